//! `gateway.lwm2m { … }`: the LwM2M gateway's section (EMQX keys, reference §5.4).

use junction_config::authn::AuthnConfig;
use junction_config::KeyStatus::{Honoured as H, Misplaced as M};
use junction_config::{ConfigError, Duration, GatewayListeners, KeyTable, ListenerType};
use serde::{Deserialize, Serialize};

/// One translator: the topic (under the client's mountpoint) and its QoS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Translator {
    /// Topic, appended to the mountpoint.
    pub topic: String,
    /// QoS, 0 to 2. Default 0.
    #[serde(default)]
    pub qos: u8,
}

impl Translator {
    fn new(topic: &str) -> Translator {
        Translator {
            topic: topic.to_string(),
            qos: 0,
        }
    }
}

/// `translators { … }`: where commands come from and events go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Translators {
    /// Commands to the device (subscribed for each device). Default `dn/#`.
    pub command: Translator,
    /// Command results, acks and errors. Default `up/resp`.
    pub response: Translator,
    /// Observe notifications. Default `up/notify`.
    pub notify: Translator,
    /// REGISTER events. Default `up/resp`.
    pub register: Translator,
    /// UPDATE events. Default `up/resp`.
    pub update: Translator,
}

impl Default for Translators {
    fn default() -> Self {
        Translators {
            command: Translator::new("dn/#"),
            response: Translator::new("up/resp"),
            notify: Translator::new("up/notify"),
            register: Translator::new("up/resp"),
            update: Translator::new("up/resp"),
        }
    }
}

/// When an UPDATE is published, `update_msg_publish_condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateCondition {
    /// Every UPDATE.
    Always,
    /// Only an UPDATE that carries an object list.
    ContainsObjectList,
}

/// `gateway.lwm2m { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lwm2mConfig {
    /// Run the gateway. Default `true`.
    pub enable: bool,
    /// Refresh client statistics. Default `true`.
    pub enable_stats: bool,
    /// Time allowed from the first datagram to an admitted client. Default `"30s"`.
    pub idle_timeout: Duration,
    /// Topic prefix. Default `"lwm2m/${endpoint_name}/"`.
    pub mountpoint: String,
    /// Directory of OMA object definition XML files, read at start and on reload. The
    /// core objects 0-7 are built in; a file may replace them. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xml_dir: Option<String>,
    /// The smallest lifetime a device may register with. Default `"15s"`.
    pub lifetime_min: Duration,
    /// The largest, and the lifetime of a registration with `lt=0`. Default `"86400s"`.
    pub lifetime_max: Duration,
    /// Queue mode: a device that sent nothing for this long is asleep; commands wait for
    /// its next uplink. Default `"22s"`.
    pub qmode_time_window: Duration,
    /// Observe every registered object (but the management objects) after a REGISTER.
    /// Default `false`.
    pub auto_observe: bool,
    /// Which UPDATEs are published. Default `contains_object_list`.
    pub update_msg_publish_condition: UpdateCondition,
    /// Topics and QoS of the translated messages.
    pub translators: Translators,
    /// The gateway's global authenticator (chain `lwm2m:global`). Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// Listeners (`udp`, `dtls`). Default: `udp.default` on 5783 and `dtls.default` on
    /// 5784, which starts only with credentials (`psk_authentication` or a certificate).
    pub listeners: GatewayListeners,
}

impl Default for Lwm2mConfig {
    fn default() -> Self {
        let mut listeners = GatewayListeners::one(ListenerType::Udp, 5783);
        listeners.dtls = GatewayListeners::one(ListenerType::Dtls, 5784).dtls;
        Lwm2mConfig {
            enable: true,
            enable_stats: true,
            idle_timeout: Duration::from_secs(30),
            mountpoint: "lwm2m/${endpoint_name}/".to_string(),
            xml_dir: None,
            lifetime_min: Duration::from_secs(15),
            lifetime_max: Duration::from_secs(86400),
            qmode_time_window: Duration::from_secs(22),
            auto_observe: false,
            update_msg_publish_condition: UpdateCondition::ContainsObjectList,
            translators: Translators::default(),
            authentication: None,
            listeners,
        }
    }
}

impl Lwm2mConfig {
    /// Lifetimes in order and at least a second, QoS at most 2, topics valid.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let min = self.lifetime_min.as_std();
        let max = self.lifetime_max.as_std();
        if min < std::time::Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "gateway.lwm2m.lifetime_min",
                "at least 1s".to_string(),
            ));
        }
        if max < min {
            return Err(ConfigError::invalid(
                "gateway.lwm2m.lifetime_max",
                "at least lifetime_min".to_string(),
            ));
        }
        let t = &self.translators;
        for (name, tr) in [
            ("command", &t.command),
            ("response", &t.response),
            ("notify", &t.notify),
            ("register", &t.register),
            ("update", &t.update),
        ] {
            if tr.qos > 2 {
                return Err(ConfigError::invalid(
                    format!("gateway.lwm2m.translators.{name}.qos"),
                    "0, 1 or 2".to_string(),
                ));
            }
            let wildcard = tr.topic.contains(['+', '#']);
            if tr.topic.is_empty() || (wildcard && name != "command") {
                return Err(ConfigError::invalid(
                    format!("gateway.lwm2m.translators.{name}.topic"),
                    "a topic (a filter for command)".to_string(),
                ));
            }
        }
        Ok(())
    }
}

/// What happens to each `gateway.lwm2m` key.
pub const KEY_STATUS: KeyTable = &[
    ("gateway.lwm2m.listeners.tcp.**", M("{}")),
    ("gateway.lwm2m.listeners.ssl.**", M("{}")),
    (
        "gateway.lwm2m.enable",
        H("test_lwm2m_register_update_deregister"),
    ),
    (
        "gateway.lwm2m.enable_stats",
        H("test_lwm2m_clients_api_shows_endpoint_and_lifetime"),
    ),
    (
        "gateway.lwm2m.idle_timeout",
        H("test_lwm2m_clients_api_shows_endpoint_and_lifetime"),
    ),
    (
        "gateway.lwm2m.mountpoint",
        H("test_lwm2m_register_update_deregister"),
    ),
    (
        "gateway.lwm2m.xml_dir",
        H("test_lwm2m_objects_from_xml_dir_and_the_api"),
    ),
    (
        "gateway.lwm2m.lifetime_min",
        H("a_lifetime_outside_the_limits_is_refused"),
    ),
    (
        "gateway.lwm2m.lifetime_max",
        H("a_lifetime_outside_the_limits_is_refused"),
    ),
    (
        "gateway.lwm2m.qmode_time_window",
        H("queue_mode_holds_commands_until_the_next_uplink"),
    ),
    (
        "gateway.lwm2m.auto_observe",
        H("auto_observe_observes_the_registered_objects"),
    ),
    (
        "gateway.lwm2m.update_msg_publish_condition",
        H("an_update_without_objects_is_published_only_when_always"),
    ),
    (
        "gateway.lwm2m.translators.**",
        H("test_lwm2m_register_update_deregister"),
    ),
    (
        "gateway.lwm2m.authentication.**",
        H("test_lwm2m_registration_authenticates_with_the_gateway_chain"),
    ),
];
