//! The MQTT-SN gateway as the framework registers it.

use crate::config::{MqttSnConfig, KEY_STATUS};
use crate::MqttSnSettings;
use junction_config::authn::AuthnConfig;
use junction_config::{ConfigError, GatewayListener, GatewayListeners, KeyTable, ListenerType};
use junction_gateway::listener_opts::udp_settings;
use junction_gateway::{common_settings, CommonSettings, Gateway, GatewayCtx, Listening};
use std::sync::Arc;

/// The MQTT-SN gateway: `gateway.mqttsn`, udp listeners.
#[derive(Debug)]
pub enum MqttSn {}

impl Gateway for MqttSn {
    type Config = MqttSnConfig;
    const NAME: &'static str = "mqttsn";
    const PROTOCOL: &'static str = "mqtt-sn";
    const FRAMES: &'static [&'static str] = crate::FRAMES;
    const LISTENER_TYPES: &'static [ListenerType] = &[ListenerType::Udp, ListenerType::Dtls];
    const KEY_STATUS: KeyTable = KEY_STATUS;

    fn enabled(config: &MqttSnConfig) -> bool {
        config.enable
    }

    fn listeners(config: &MqttSnConfig) -> &GatewayListeners {
        &config.listeners
    }

    fn authentication(config: &MqttSnConfig) -> Option<&AuthnConfig> {
        config.authentication.as_ref()
    }

    fn common(c: &MqttSnConfig) -> CommonSettings {
        common_settings(
            &c.mountpoint,
            c.idle_timeout.as_std(),
            c.enable_stats,
            &c.clientinfo_override,
        )
    }

    fn validate(config: &MqttSnConfig) -> Result<(), ConfigError> {
        config.validate()
    }

    fn restart_listeners(old: &MqttSnConfig, new: &MqttSnConfig) -> bool {
        old.predefined != new.predefined
            || old.gateway_id != new.gateway_id
            || old.broadcast != new.broadcast
            || old.enable_qos3 != new.enable_qos3
            || old.subs_resume != new.subs_resume
    }

    async fn start(
        ctx: Arc<GatewayCtx>,
        c: &MqttSnConfig,
        kind: ListenerType,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<Box<dyn Listening>> {
        let id = format!("{}:{}:{name}", Self::NAME, kind.as_str());
        let settings = Arc::new(MqttSnSettings {
            gateway_id: c.gateway_id,
            enable_qos3: c.enable_qos3,
            subs_resume: c.subs_resume,
            predefined: c
                .predefined
                .iter()
                .map(|p| (p.id, p.topic.clone()))
                .collect(),
            listener_mountpoint: l.mountpoint.clone(),
            broadcast: c.broadcast,
            session: ctx.settings().session,
            udp: udp_settings(l),
            // ADVERTISE every 15 min to the interfaces' broadcast addresses.
            ..MqttSnSettings::default()
        });
        let protocol = Arc::new(crate::protocol::SnProtocol::new(ctx.clone(), settings));
        junction_dtls::start_datagram(ctx, protocol, kind, id, l).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_config::{Bind, Config};

    fn load(text: &str) -> Result<MqttSnConfig, ConfigError> {
        let config = Config::from_str_with_env(text, Vec::<(String, String)>::new()).unwrap();
        let sn: MqttSnConfig = config.gateway.section("mqttsn")?;
        sn.validate()?;
        Ok(sn)
    }

    #[test]
    fn the_default_is_udp_1884_with_gateway_id_1() {
        let sn = load("").unwrap();
        assert_eq!(sn.listeners.udp["default"].bind, Some(Bind::any(1884)));
        assert_eq!(sn.gateway_id, 1);
        assert!(sn.enable_qos3);
    }

    #[test]
    fn an_emqx_mqttsn_section_loads_and_predefined_ids_are_checked() {
        let sn = load(
            r#"gateway.mqttsn {
              gateway_id = 1
              broadcast = true
              enable_qos3 = false
              predefined = [ { id = 1, topic = "/predefined/topic/name/hello" } ]
              listeners.udp.default { bind = 1884, max_connections = 10240000, max_conn_rate = 1000 }
            }"#,
        )
        .unwrap();
        assert_eq!(sn.predefined[0].id, 1);
        assert!(!sn.enable_qos3);
        match load("gateway.mqttsn.predefined = [{id = 2000, topic = t}]") {
            Err(ConfigError::Invalid { key_path, .. }) => {
                assert_eq!(key_path, "gateway.mqttsn.predefined")
            }
            other => panic!("{other:?}"),
        }
    }
}
