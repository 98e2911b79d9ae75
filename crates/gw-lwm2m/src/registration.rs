//! The registration interface's data (LwM2M 1.1 Core §6.2 and §8.2.3, EMQX's rules of
//! reference §5.4): a REGISTER's query and object list, the UPDATEs merged into it, and
//! the JSON of the register and update events. Pure: no session, no clock.

use junction_codec_coap::link_format::{self, Limits};
use serde_json::{Map, Value as Json};

/// The versions the `lwm2m` query may name.
const VERSIONS: &[&str] = &["1.0", "1", "1.1", "1.2"];

/// NB-IoT APNs whose devices sleep (power saving mode), as EMQX lists them: their
/// commands are queued like those of a `Q` binding.
const PSM_APNS: &[&str] = &[
    "ctnb",
    "psmA.eDRX0.ctnb",
    "psmC.eDRX0.ctnb",
    "psmF.eDRXC.ctnb",
];

/// The objects a device may list: EMQX's 512 links (the CoRE limit) are plenty.
const MAX_OBJECTS: usize = 512;

/// The query parameters a registration keeps: UPDATEs may add keys, but not without end.
const MAX_PARAMS: usize = 32;

/// A registration: who the device is, for how long, and what it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// `ep`, the endpoint client name.
    pub endpoint: String,
    /// The lifetime in seconds (`lt`; `lifetime_max` when 0).
    pub lifetime: u32,
    /// The prefix the device serves its objects under (`rt="oma.lwm2m"`), `/` if none.
    pub alternate_path: String,
    /// The object and instance links, `/3/0`, without the alternate path.
    pub objects: Vec<String>,
    /// Every query parameter (`lt` as sent), in the order first seen: a short list, not
    /// a map (a registration is held per device, for as long as it lives).
    pub params: Vec<(Box<str>, Box<str>)>,
}

/// Why a REGISTER or an UPDATE is refused: 4.00 with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl Refused {
    fn new(text: impl Into<String>) -> Refused {
        Refused(text.into())
    }
}

/// The lifetime limits of `gateway.lwm2m`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// `lifetime_min`.
    pub min: u32,
    /// `lifetime_max`.
    pub max: u32,
}

impl Lifetimes {
    /// The lifetime `lt` asks for: 0 is the maximum; below the minimum or above the
    /// maximum is refused, as EMQX documents the limits (5.x does not check them).
    fn resolve(self, lt: &str) -> Result<u32, Refused> {
        let lt: u32 = lt.parse().map_err(|_| Refused::new("invalid lifetime"))?;
        match lt {
            0 => Ok(self.max),
            lt if lt < self.min || lt > self.max => Err(Refused(format!(
                "lifetime {lt}s is outside {}s..{}s",
                self.min, self.max
            ))),
            lt => Ok(lt),
        }
    }
}

impl Registration {
    /// A REGISTER (`POST /rd?ep=…&lt=…&lwm2m=…`): its query and link-format payload.
    pub fn register(
        query: &[(&str, &str)],
        payload: &[u8],
        limits: Lifetimes,
    ) -> Result<Registration, Refused> {
        let get = |k: &str| query.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let endpoint = get("ep")
            .filter(|e| !e.is_empty())
            .ok_or_else(|| Refused::new("missing endpoint name (ep)"))?;
        let lt = get("lt").ok_or_else(|| Refused::new("missing lifetime (lt)"))?;
        let lifetime = limits.resolve(lt)?;
        let version = get("lwm2m").unwrap_or("1.0");
        if !VERSIONS.contains(&version) {
            return Err(Refused::new("invalid lwm2m version"));
        }
        let (alternate_path, objects) = object_list(payload)?;
        if query.len() > MAX_PARAMS {
            return Err(Refused(format!("more than {MAX_PARAMS} query parameters")));
        }
        let mut params: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(query.len());
        for (k, v) in query {
            if !params.iter().any(|(key, _)| &**key == *k) {
                params.push(((*k).into(), (*v).into()));
            }
        }
        Ok(Registration {
            endpoint: endpoint.to_string(),
            lifetime,
            alternate_path,
            objects,
            params,
        })
    }

    /// An UPDATE (`POST /rd/<ep>?lt=…&b=…`): new parameters replace old ones, a payload
    /// replaces the object list. True if it carried an object list.
    pub fn update(
        &mut self,
        query: &[(&str, &str)],
        payload: &[u8],
        limits: Lifetimes,
    ) -> Result<bool, Refused> {
        let lifetime = match query.iter().find(|(k, _)| *k == "lt") {
            Some((_, lt)) => Some(limits.resolve(lt)?),
            None => None,
        };
        let objects = if payload.is_empty() {
            None
        } else {
            Some(object_list(payload)?)
        };
        let added = query
            .iter()
            .filter(|(k, _)| *k != "ep" && self.param(k).is_none())
            .count();
        if self.params.len() + added > MAX_PARAMS {
            return Err(Refused(format!("more than {MAX_PARAMS} query parameters")));
        }
        if let Some(lt) = lifetime {
            self.lifetime = lt;
        }
        for (k, v) in query {
            // The endpoint name is the registration's: an UPDATE does not rename it.
            if *k == "ep" {
                continue;
            }
            match self.params.iter_mut().find(|(key, _)| &**key == *k) {
                Some((_, value)) => *value = (*v).into(),
                None => self.params.push(((*k).into(), (*v).into())),
            }
        }
        let carried = objects.is_some();
        if let Some((alternate_path, objects)) = objects {
            self.alternate_path = alternate_path;
            self.objects = objects;
        }
        Ok(carried)
    }

    /// A REGISTER from an already registered device: its parameters and objects replace
    /// the registration's, as an UPDATE's do.
    pub fn reregister(&mut self, new: Registration) {
        let endpoint = std::mem::take(&mut self.endpoint);
        *self = new;
        self.endpoint = endpoint;
    }

    /// The value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// The binding (`b`), `U` if none.
    pub fn binding(&self) -> &str {
        self.param("b").unwrap_or("U")
    }

    /// Whether the device sleeps between uplinks: a queue-mode binding (`UQ`, `SQ`,
    /// `UQS`) or an NB-IoT power-saving APN.
    pub fn queue_mode(&self) -> bool {
        let b = self.binding();
        let apn = self.param("apn");
        // LwM2M 1.1 says queue mode with the `Q` parameter instead of in the binding.
        b.contains('Q') || self.param("Q").is_some() || apn.is_some_and(|a| PSM_APNS.contains(&a))
    }

    /// The LwM2M version the device registered with.
    pub fn version(&self) -> &str {
        self.param("lwm2m").unwrap_or("1.0")
    }

    /// A device path (`/3/0/1`) as the device serves it, under its alternate path.
    pub fn device_path(&self, path: &str) -> String {
        match self.alternate_path.as_str() {
            "/" | "" => path.to_string(),
            alt => format!("{}{path}", alt.trim_end_matches('/')),
        }
    }

    /// The event EMQX publishes on the register and update topics: `msgType` and every
    /// parameter, `lt` as an integer, the alternate path and the object list.
    pub fn event(&self, msg_type: &str) -> Json {
        let mut data: Map<String, Json> = self
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
            .collect();
        data.insert("ep".into(), Json::String(self.endpoint.clone()));
        data.insert("lt".into(), Json::from(self.lifetime));
        data.insert(
            "alternatePath".into(),
            Json::String(self.alternate_path.clone()),
        );
        data.insert(
            "objectList".into(),
            Json::Array(self.objects.iter().cloned().map(Json::String).collect()),
        );
        serde_json::json!({ "msgType": msg_type, "data": data })
    }
}

/// The alternate path and the object links of a registration payload (LwM2M 1.1 Core
/// §6.2.1): `</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>`. Attributes (`ver`,
/// `ct`) are not kept. Spaces after commas, which some devices send, are accepted.
pub fn object_list(payload: &[u8]) -> Result<(String, Vec<String>), Refused> {
    let text =
        std::str::from_utf8(payload).map_err(|_| Refused::new("object list is not UTF-8"))?;
    let limits = Limits {
        max_links: MAX_OBJECTS,
        ..Limits::default()
    };
    let links = match link_format::parse(text, limits) {
        Ok(links) => links,
        Err(_) => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            link_format::parse(&compact, limits)
                .map_err(|e| Refused(format!("invalid object list: {e}")))?
        }
    };
    let alternate = links
        .iter()
        .find(|l| l.value("rt") == Some("oma.lwm2m"))
        .map(|l| l.target.trim_end_matches('/').to_string())
        .filter(|t| !t.is_empty());
    let mut objects = Vec::with_capacity(links.len());
    for link in &links {
        if link.value("rt") == Some("oma.lwm2m") {
            continue;
        }
        let target = match &alternate {
            Some(alt) => match link.target.strip_prefix(alt.as_str()) {
                Some(rest) if rest.starts_with('/') => rest,
                _ => continue,
            },
            None => link.target.as_str(),
        };
        if is_object_path(target) {
            objects.push(target.to_string());
        }
    }
    Ok((alternate.unwrap_or_else(|| "/".to_string()), objects))
}

/// `/3` or `/3/0`: one or two ids of at most 65534.
fn is_object_path(target: &str) -> bool {
    let Some(rest) = target.strip_prefix('/') else {
        return false;
    };
    let ids: Vec<&str> = rest.split('/').collect();
    (1..=2).contains(&ids.len())
        && ids
            .iter()
            .all(|id| id.parse::<u16>().is_ok_and(|n| n < 65535))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Lifetimes = Lifetimes { min: 1, max: 86400 };

    #[test]
    fn a_register_keeps_every_parameter_and_its_object_list() {
        let q = [
            ("ep", "dev1"),
            ("lt", "345"),
            ("lwm2m", "1.0"),
            ("apn", "x"),
            ("custom", "y"),
        ];
        let r = Registration::register(&q, b"</1>, </2>, </3/0>;ver=1.1", LIMITS).unwrap();
        assert_eq!(r.endpoint, "dev1");
        assert_eq!(r.lifetime, 345);
        assert_eq!(r.objects, vec!["/1", "/2", "/3/0"]);
        assert_eq!(r.alternate_path, "/");
        let event = r.event("register");
        assert_eq!(event["msgType"], "register");
        assert_eq!(event["data"]["lt"], 345);
        assert_eq!(event["data"]["custom"], "y");
        assert_eq!(event["data"]["alternatePath"], "/");
        assert_eq!(event["data"]["objectList"][2], "/3/0");
    }

    #[test]
    fn an_alternate_path_is_stripped_from_the_objects_and_prefixed_to_requests() {
        let q = [("ep", "d"), ("lt", "60")];
        let payload = br#"</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>"#;
        let r = Registration::register(&q, payload, LIMITS).unwrap();
        assert_eq!(r.alternate_path, "/lwm2m");
        assert_eq!(r.objects, vec!["/1/0", "/3/0"]);
        assert_eq!(r.device_path("/3/0/1"), "/lwm2m/3/0/1");
    }

    #[test]
    fn missing_endpoint_lifetime_or_a_wrong_version_is_refused() {
        assert!(Registration::register(&[("lt", "60")], b"", LIMITS).is_err());
        assert!(Registration::register(&[("ep", "d")], b"", LIMITS).is_err());
        let bad = [("ep", "d"), ("lt", "60"), ("lwm2m", "8.3")];
        assert_eq!(
            Registration::register(&bad, b"", LIMITS).unwrap_err().0,
            "invalid lwm2m version"
        );
        for v in ["1.0", "1", "1.1", "1.2"] {
            let ok = [("ep", "d"), ("lt", "60"), ("lwm2m", v)];
            assert!(Registration::register(&ok, b"", LIMITS).is_ok(), "{v}");
        }
    }

    #[test]
    fn a_lifetime_outside_the_limits_is_refused() {
        let limits = Lifetimes { min: 15, max: 3600 };
        let reg = |lt: &str| Registration::register(&[("ep", "d"), ("lt", lt)], b"", limits);
        assert!(reg("14").is_err());
        assert!(reg("3601").is_err());
        assert!(reg("abc").is_err());
        assert_eq!(reg("15").unwrap().lifetime, 15);
        assert_eq!(reg("0").unwrap().lifetime, 3600);
    }

    #[test]
    fn an_update_merges_parameters_and_replaces_objects() {
        let q = [("ep", "d"), ("lt", "60"), ("b", "U")];
        let mut r = Registration::register(&q, b"</1>,</3/0>", LIMITS).unwrap();
        assert!(!r.update(&[("lt", "789")], b"", LIMITS).unwrap());
        assert_eq!(r.lifetime, 789);
        assert_eq!(r.objects, vec!["/1", "/3/0"]);
        assert!(r
            .update(&[("b", "UQ"), ("ep", "other")], b"</5/0>", LIMITS)
            .unwrap());
        assert_eq!(r.objects, vec!["/5/0"]);
        assert_eq!(r.endpoint, "d");
        assert!(r.queue_mode());
        assert_eq!(r.event("update")["data"]["lt"], 789);
    }

    #[test]
    fn updates_cannot_grow_the_parameters_without_end() {
        let mut r = Registration::register(&[("ep", "d"), ("lt", "60")], b"", LIMITS).unwrap();
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut refused = 0;
        for k in &keys {
            if r.update(&[(k.as_str(), "v")], b"", LIMITS).is_err() {
                refused += 1;
            }
        }
        assert_eq!(r.params.len(), MAX_PARAMS);
        assert_eq!(refused, 40 - (MAX_PARAMS - 2));
        // A known key is still updated.
        assert!(r.update(&[("lt", "90")], b"", LIMITS).is_ok());
    }

    #[test]
    fn queue_mode_is_the_binding_or_a_psm_apn() {
        let reg = |q: &[(&str, &str)]| Registration::register(q, b"", LIMITS).unwrap();
        assert!(!reg(&[("ep", "d"), ("lt", "60")]).queue_mode());
        assert!(reg(&[("ep", "d"), ("lt", "60"), ("b", "SQ")]).queue_mode());
        assert!(reg(&[("ep", "d"), ("lt", "60"), ("apn", "psmA.eDRX0.ctnb")]).queue_mode());
        assert!(reg(&[("ep", "d"), ("lt", "60"), ("Q", "")]).queue_mode());
    }

    #[test]
    fn a_hostile_object_list_is_refused_or_bounded() {
        assert!(object_list(b"\xff\xfe").is_err());
        assert!(object_list(b"<<<").is_err());
        let many: String = (0..600)
            .map(|i| format!("</{i}>"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(object_list(many.as_bytes()).is_err());
        // Not object paths: dropped.
        let (_, objects) = object_list(b"</x>,</1/2/3>,</70000>,</4>").unwrap();
        assert_eq!(objects, vec!["/4"]);
    }
}
