//! The identity of a connecting MQTT-SN client: `clientinfo_override` templates rendered
//! against the CONNECT (reference §1.4, §1.6).
//!
//! EMQX's MQTT-SN defaults: the client id is `${ConnInfo.clientid}` (the CONNECT ClientId),
//! a client id that renders empty becomes a random 16-character one, and user name and
//! password exist only through the override.

use bytestring::ByteString;
use junction_gateway::mountpoint::render_override;
use junction_gateway::CommonSettings;
use rand::Rng;

/// `clientinfo_override.clientid` when none is configured.
pub(crate) const DEFAULT_CLIENTID_TEMPLATE: &str = "${ConnInfo.clientid}";

/// Who a CONNECT says the client is, after the override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub clientid: ByteString,
    pub username: Option<ByteString>,
    pub password: Option<String>,
}

/// A random 16-character alphanumeric client id.
pub(crate) fn random_clientid() -> ByteString {
    let id: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    ByteString::from(id)
}

/// Render a template against the CONNECT: `${ConnInfo.clientid}`, `${ConnInfo.proto_name}`
/// and `${ConnInfo.proto_ver}`; anything else renders empty.
fn render(template: &str, connect_clientid: &str) -> String {
    render_override(template, |path| match path {
        "ConnInfo.clientid" => Some(connect_clientid.to_string()),
        "ConnInfo.proto_name" => Some("MQTT-SN".to_string()),
        "ConnInfo.proto_ver" => Some("1.2".to_string()),
        _ => None,
    })
}

/// The client id a CONNECT (or a PINGREQ that names its client) stands for, `None` when it
/// renders empty.
pub(crate) fn clientid_of(common: &CommonSettings, connect_clientid: &str) -> Option<ByteString> {
    let template = common
        .override_clientid
        .as_deref()
        .unwrap_or(DEFAULT_CLIENTID_TEMPLATE);
    let id = render(template, connect_clientid);
    (!id.is_empty()).then(|| ByteString::from(id))
}

/// The identity of a client that sent CONNECT with `connect_clientid`.
pub(crate) fn identity(common: &CommonSettings, connect_clientid: &str) -> Identity {
    Identity {
        clientid: clientid_of(common, connect_clientid).unwrap_or_else(random_clientid),
        username: common
            .override_username
            .as_deref()
            .map(|t| render(t, connect_clientid))
            .filter(|u| !u.is_empty())
            .map(ByteString::from),
        password: common
            .override_password
            .as_deref()
            .map(|t| render(t, connect_clientid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(
        clientid: Option<&str>,
        username: Option<&str>,
        password: Option<&str>,
    ) -> CommonSettings {
        CommonSettings {
            override_clientid: clientid.map(str::to_string),
            override_username: username.map(str::to_string),
            override_password: password.map(str::to_string),
            ..CommonSettings::default()
        }
    }

    #[test]
    fn without_override_the_connect_client_id_is_used_and_there_are_no_credentials() {
        let id = identity(&CommonSettings::default(), "dev-1");
        assert_eq!(
            id,
            Identity {
                clientid: "dev-1".into(),
                username: None,
                password: None
            }
        );
    }

    #[test]
    fn templates_mix_conninfo_fields_and_literal_text() {
        let c = common(
            Some("sn-${ConnInfo.clientid}"),
            Some("${ConnInfo.proto_name}/${ConnInfo.clientid}"),
            Some("secret-${ConnInfo.proto_ver}"),
        );
        let id = identity(&c, "dev-2");
        assert_eq!(id.clientid, "sn-dev-2");
        assert_eq!(id.username.as_deref(), Some("MQTT-SN/dev-2"));
        assert_eq!(id.password.as_deref(), Some("secret-1.2"));
        assert_eq!(
            identity(&common(Some("fixed"), None, None), "x").clientid,
            "fixed"
        );
    }

    #[test]
    fn an_empty_client_id_becomes_a_random_one_and_an_empty_username_none() {
        let a = identity(&CommonSettings::default(), "");
        let b = identity(&CommonSettings::default(), "");
        assert_eq!(a.clientid.len(), 16);
        assert!(a.clientid.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.clientid, b.clientid);
        let c = common(Some("${Packet.nope}"), Some("${ConnInfo.unknown}"), None);
        let id = identity(&c, "dev-3");
        assert_eq!(id.clientid.len(), 16);
        assert_eq!(id.username, None);
        assert_eq!(clientid_of(&c, "dev-3"), None);
    }
}
