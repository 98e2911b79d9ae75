//! The MQTT-SN gateway as the framework registers it.

use crate::config::{MqttSnConfig, KEY_STATUS};
use crate::{MqttSnSettings, UdpSettings};
use anyhow::Context;
use junction_config::authn::AuthnConfig;
use junction_config::{ConfigError, GatewayListener, GatewayListeners, KeyTable, ListenerType};
use junction_gateway::listener_opts::{access_list, bind_of};
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
        let bind = bind_of(&id, l)?;
        let udp = l.udp_options.clone().unwrap_or_default();
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
            udp: UdpSettings {
                access: access_list(&l.access_rules),
                max_peers: l.max_connections.map(|n| n.min(usize::MAX as u64) as usize),
                max_new_peers_per_sec: l.max_conn_rate.map(|n| n.min(u32::MAX as u64) as u32),
                recbuf: udp
                    .recbuf
                    .map(|b| b.as_u64().min(usize::MAX as u64) as usize),
                sndbuf: udp
                    .sndbuf
                    .map(|b| b.as_u64().min(usize::MAX as u64) as usize),
                reuseaddr: udp.reuseaddr,
                buffer: udp
                    .buffer
                    .map_or(65_536, |b| b.as_u64().min(65_536) as usize),
                health_check: l.health_check.as_ref().map(|h| {
                    (
                        bytes::Bytes::from(h.request.clone()),
                        bytes::Bytes::from(h.reply.clone()),
                    )
                }),
            },
            // ADVERTISE every 15 min to the interfaces' broadcast addresses.
            ..MqttSnSettings::default()
        });
        let dtls = match kind {
            ListenerType::Dtls => Some(dtls_endpoint(&ctx, &id, l)?),
            _ => None,
        };
        let udp = settings.udp.clone();
        let protocol = Arc::new(crate::protocol::SnProtocol::new(ctx.clone(), settings));
        let handle =
            junction_gateway::driver::datagram::start(ctx, protocol, id.clone(), bind, udp, dtls)
                .await
                .with_context(|| format!("listener {id}: cannot bind {bind}"))?;
        Ok(Box::new(handle))
    }
}

/// The DTLS server of listener `id`: the node's PSK identities and the listener's
/// `dtls_options`.
fn dtls_endpoint(
    ctx: &GatewayCtx,
    id: &str,
    l: &GatewayListener,
) -> anyhow::Result<Arc<dyn junction_gateway::driver::dtls::Endpoint>> {
    let options = l.dtls_options.clone().unwrap_or_default();
    let pem = |value: &Option<String>, key: &str| -> anyhow::Result<Option<Vec<u8>>> {
        value
            .as_deref()
            .map(|v| {
                junction_transport::Pem::from_config(v)
                    .bytes()
                    .map_err(|e| anyhow::anyhow!("listener {id}: dtls_options.{key}: {e}"))
            })
            .transpose()
    };
    let cert = pem(&options.certfile, "certfile")?;
    let key = pem(&options.keyfile, "keyfile")?;
    let config = junction_dtls::ServerConfig {
        psk: ctx.settings().psk.clone(),
        cert_and_key: cert.zip(key),
        ca: pem(&options.cacertfile, "cacertfile")?,
        verify_peer: options.verify == junction_config::SslVerify::VerifyPeer,
        fail_if_no_peer_cert: options.fail_if_no_peer_cert,
        ciphers: (!options.ciphers.is_empty()).then(|| options.ciphers.join(":")),
        mtu: 1400,
        handshake_timeout: options.handshake_timeout.as_std(),
    };
    let endpoint = junction_dtls::OpensslEndpoint::new(&config)
        .map_err(|e| anyhow::anyhow!("listener {id}: {e}"))?;
    Ok(Arc::new(endpoint))
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
