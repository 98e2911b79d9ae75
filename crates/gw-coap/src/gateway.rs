//! The CoAP gateway as the framework registers it.

use crate::config::{CoapConfig, KEY_STATUS};
use crate::protocol::{CoapProtocol, CoapSettings};
use junction_config::authn::AuthnConfig;
use junction_config::{ConfigError, GatewayListener, GatewayListeners, KeyTable, ListenerType};
use junction_gateway::{common_settings, CommonSettings, Gateway, GatewayCtx, Listening};
use std::sync::Arc;

/// The CoAP gateway: `gateway.coap`, udp and dtls listeners.
#[derive(Debug)]
pub enum Coap {}

impl Gateway for Coap {
    type Config = CoapConfig;
    const NAME: &'static str = "coap";
    const PROTOCOL: &'static str = "coap";
    const FRAMES: &'static [&'static str] = crate::frame::NAMES;
    const LISTENER_TYPES: &'static [ListenerType] = &[ListenerType::Udp, ListenerType::Dtls];
    const KEY_STATUS: KeyTable = KEY_STATUS;

    fn enabled(config: &CoapConfig) -> bool {
        config.enable
    }

    fn listeners(config: &CoapConfig) -> &GatewayListeners {
        &config.listeners
    }

    fn authentication(config: &CoapConfig) -> Option<&AuthnConfig> {
        config.authentication.as_ref()
    }

    fn common(c: &CoapConfig) -> CommonSettings {
        common_settings(
            &c.mountpoint,
            c.idle_timeout.as_std(),
            c.enable_stats,
            &Default::default(),
        )
    }

    fn validate(config: &CoapConfig) -> Result<(), ConfigError> {
        config.validate()
    }

    fn restart_listeners(old: &CoapConfig, new: &CoapConfig) -> bool {
        old.heartbeat != new.heartbeat
            || old.connection_required != new.connection_required
            || old.notify_type != new.notify_type
            || old.subscribe_qos != new.subscribe_qos
            || old.publish_qos != new.publish_qos
    }

    async fn start(
        ctx: Arc<GatewayCtx>,
        c: &CoapConfig,
        kind: ListenerType,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<Box<dyn Listening>> {
        let id = format!("{}:{}:{name}", Self::NAME, kind.as_str());
        let settings = Arc::new(CoapSettings {
            heartbeat: c.heartbeat.as_std(),
            connection_required: c.connection_required,
            notify_type: c.notify_type,
            subscribe_qos: c.subscribe_qos,
            publish_qos: c.publish_qos,
            listener_mountpoint: l.mountpoint.clone(),
            session: ctx.settings().session,
        });
        let protocol = Arc::new(CoapProtocol::new(ctx.clone(), settings));
        junction_dtls::start_datagram(ctx, protocol, kind, id, l).await
    }
}
