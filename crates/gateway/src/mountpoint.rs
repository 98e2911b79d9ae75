//! Mountpoints: a per-gateway (or per-listener) topic prefix, with placeholders.
//!
//! EMQX semantics (reference §1.6): the template may contain `${clientid}`, `${username}`,
//! `${endpoint_name}` and `${zone}`; an unknown placeholder, or one whose value is not
//! known, stays as written. Mounting is plain prefix concatenation on publish and subscribe;
//! for shared subscriptions (`$share/<group>/<filter>`, `$queue/<filter>`) the inner filter
//! is mounted. Unmounting strips the prefix from delivered topics.

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

/// Render a template: replace each known placeholder that has a value.
pub fn render(template: &str, vars: &Placeholders<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let value = match name {
            "clientid" => vars.clientid,
            "username" => vars.username,
            "endpoint_name" => vars.endpoint_name,
            "zone" => vars.zone,
            _ => None,
        };
        match value {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
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
        assert_eq!(render("stomp/${clientid}/", &vars), "stomp/c1/");
        assert_eq!(render("${username}-${clientid}/", &vars), "u1-c1/");
        assert_eq!(
            render("lw/${endpoint_name}/", &vars),
            "lw/${endpoint_name}/"
        );
        assert_eq!(render("x/${nope}/y", &vars), "x/${nope}/y");
        assert_eq!(render("open ${clientid", &vars), "open ${clientid");
        assert_eq!(render("", &vars), "");
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

/// Render a `clientinfo_override` template (reference §1.6): each `${path}` is replaced by
/// `lookup(path)` (`Packet.headers.login`, `ConnInfo.clientid`, …); a path with no value
/// renders empty, so an override that finds nothing leaves an empty result, which the
/// gateway replaces by its default (a random client id, the packet's own user name).
pub fn render_override(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        if let Some(v) = lookup(&after[..end]) {
            out.push_str(&v);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod override_tests {
    use super::render_override;

    #[test]
    fn override_templates_read_packet_fields_and_render_missing_ones_empty() {
        let lookup = |p: &str| (p == "Packet.headers.login").then(|| "alice".to_string());
        assert_eq!(render_override("${Packet.headers.login}", lookup), "alice");
        assert_eq!(
            render_override("u-${Packet.headers.login}-x", lookup),
            "u-alice-x"
        );
        assert_eq!(render_override("${Packet.headers.nope}", lookup), "");
        assert_eq!(render_override("fixed", lookup), "fixed");
    }
}
