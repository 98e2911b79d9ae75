//! Mountpoints (the shared part lives in [`junction_topic::mountpoint`]) and the
//! `clientinfo_override` templates of the gateways.

pub use junction_topic::mountpoint::{expand, render, Mountpoint, Placeholders, UnsafePlaceholder};

/// Render a `clientinfo_override` template (reference §1.6): each `${path}` is replaced by
/// `lookup(path)` (`Packet.headers.login`, `ConnInfo.clientid`, …); a path with no value
/// renders empty, so an override that finds nothing leaves an empty result, which the
/// gateway replaces by its default (a random client id, the packet's own user name).
pub fn render_override(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let rendered = expand(template, |path| {
        Ok::<_, std::convert::Infallible>(Some(lookup(path).unwrap_or_default()))
    });
    match rendered {
        Ok(text) => text,
        Err(never) => match never {},
    }
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
