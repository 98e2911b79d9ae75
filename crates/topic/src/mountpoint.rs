//! Mountpoints: a per-listener or per-gateway topic prefix, with placeholders, for MQTT
//! listeners and every gateway alike.
//!
//! EMQX semantics (reference §1.6): the template may contain `${clientid}`, `${username}`,
//! `${endpoint_name}` and `${zone}`; an unknown placeholder, or one whose value is not
//! known, stays as written. Mounting is plain prefix concatenation on publish and subscribe;
//! for shared subscriptions (`$share/<group>/<filter>`, `$queue/<filter>`) the inner filter
//! is mounted. Unmounting strips the prefix from delivered topics.
//!
//! A value that would change the mountpoint's shape is refused: a client id `+` under
//! `tenants/${clientid}/` would make its subscription `tenants/+/#` reach every tenant, and
//! a client id `a/b` would land in tenant `a`'s tree. The client is refused instead, with its
//! protocol's "client identifier not valid".

/// Values available to a mountpoint template.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placeholders<'a> {
    /// `${clientid}`.
    pub clientid: Option<&'a str>,
    /// `${username}`.
    pub username: Option<&'a str>,
    /// `${endpoint_name}` (LwM2M).
    pub endpoint_name: Option<&'a str>,
    /// `${zone}`.
    pub zone: Option<&'a str>,
}

/// A placeholder's value holds a character that would widen or move the mountpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("${{{placeholder}}} holds '+', '#', '/' or NUL and cannot be used in a mountpoint")]
pub struct UnsafePlaceholder {
    /// The placeholder (`clientid`, `username`, …).
    pub placeholder: &'static str,
}

/// Expand the `${name}` placeholders of `template`: `value(name)` gives the text for one,
/// `Ok(None)` keeps it as written, or an error stops. An unclosed `${` is text. Mountpoints
/// and the gateways' `clientinfo_override` templates both render through it.
pub fn expand<E>(
    template: &str,
    mut value: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        match value(&after[..end])? {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Render a template: replace each known placeholder that has a value. A value with `+`,
/// `#`, `/` or U+0000 is refused ([`UnsafePlaceholder`]).
pub fn render(template: &str, vars: &Placeholders<'_>) -> Result<String, UnsafePlaceholder> {
    expand(template, |name| {
        let (placeholder, value) = match name {
            "clientid" => ("clientid", vars.clientid),
            "username" => ("username", vars.username),
            "endpoint_name" => ("endpoint_name", vars.endpoint_name),
            "zone" => ("zone", vars.zone),
            _ => ("", None),
        };
        match value {
            Some(v) if v.contains(['+', '#', '/', '\0']) => Err(UnsafePlaceholder { placeholder }),
            v => Ok(v.map(str::to_string)),
        }
    })
}

/// A rendered mountpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mountpoint(String);

impl Mountpoint {
    /// A mountpoint from an already rendered prefix (empty: none).
    pub fn new(prefix: impl Into<String>) -> Self {
        Mountpoint(prefix.into())
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when there is no prefix.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The broker topic for a topic the client published to.
    pub fn mount(&self, topic: &str) -> String {
        let mut s = String::with_capacity(self.0.len() + topic.len());
        s.push_str(&self.0);
        s.push_str(topic);
        s
    }

    /// The broker filter for a filter the client subscribed to; shared-subscription
    /// prefixes stay in front and the inner filter is mounted.
    pub fn mount_filter(&self, filter: &str) -> String {
        if self.0.is_empty() {
            return filter.to_string();
        }
        if let Some(rest) = filter.strip_prefix("$share/") {
            if let Some((group, inner)) = rest.split_once('/') {
                return format!("$share/{group}/{}{inner}", self.0);
            }
        }
        if let Some(inner) = filter.strip_prefix("$queue/") {
            return format!("$queue/{}{inner}", self.0);
        }
        self.mount(filter)
    }

    /// The client-visible topic of a delivered broker topic (the prefix stripped; a topic
    /// without the prefix is returned unchanged).
    pub fn unmount<'t>(&self, topic: &'t str) -> &'t str {
        topic.strip_prefix(self.0.as_str()).unwrap_or(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_and_unknown_ones_stay_literal() {
        let vars = Placeholders {
            clientid: Some("c1"),
            username: Some("u1"),
            ..Placeholders::default()
        };
        let ok = |t: &str| render(t, &vars).unwrap();
        assert_eq!(ok("stomp/${clientid}/"), "stomp/c1/");
        assert_eq!(ok("${username}-${clientid}/"), "u1-c1/");
        assert_eq!(ok("lw/${endpoint_name}/"), "lw/${endpoint_name}/");
        assert_eq!(ok("x/${nope}/y"), "x/${nope}/y");
        assert_eq!(ok("open ${clientid"), "open ${clientid");
        assert_eq!(ok(""), "");
    }

    #[test]
    fn a_value_that_would_widen_or_move_the_mountpoint_is_refused() {
        for bad in ["+", "#", "a/b", "x+", "\0"] {
            let vars = Placeholders {
                clientid: Some(bad),
                username: Some("fine"),
                ..Placeholders::default()
            };
            assert_eq!(
                render("t/${clientid}/", &vars),
                Err(UnsafePlaceholder {
                    placeholder: "clientid"
                }),
                "{bad:?}"
            );
            // Not used by the template: no harm.
            assert!(render("t/${username}/", &vars).is_ok());
        }
    }

    #[test]
    fn mount_and_unmount_are_prefix_operations() {
        let m = Mountpoint::new("stomp/");
        assert_eq!(m.mount("a/b"), "stomp/a/b");
        assert_eq!(m.unmount("stomp/a/b"), "a/b");
        assert_eq!(m.unmount("other/a"), "other/a");
        assert_eq!(Mountpoint::default().mount("a"), "a");
    }

    #[test]
    fn shared_filters_mount_the_inner_filter() {
        let m = Mountpoint::new("gw/");
        assert_eq!(m.mount_filter("$share/g/a/+"), "$share/g/gw/a/+");
        assert_eq!(m.mount_filter("$queue/a/#"), "$queue/gw/a/#");
        assert_eq!(m.mount_filter("a/#"), "gw/a/#");
        assert_eq!(
            Mountpoint::default().mount_filter("$share/g/a"),
            "$share/g/a"
        );
    }
}
