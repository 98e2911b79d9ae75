//! The LwM2M gateway as the framework registers it.

use crate::config::{Lwm2mConfig, KEY_STATUS};
use crate::objects::Objects;
use crate::protocol::{Lwm2mProtocol, Lwm2mSettings};
use crate::registration::Lifetimes;
use junction_config::authn::AuthnConfig;
use junction_config::{ConfigError, GatewayListener, GatewayListeners, KeyTable, ListenerType};
use junction_gateway::{
    common_settings, CommonSettings, Gateway, GatewayCtx, GatewayResources, Listening,
};
use std::sync::Arc;

/// The LwM2M gateway: `gateway.lwm2m`, udp and dtls listeners.
#[derive(Debug)]
pub enum Lwm2m {}

/// The gateway's object definitions, made once per gateway and shared with the API.
/// The files of `xml_dir` are read again at every start (a reload that changed it).
fn objects_of(ctx: &GatewayCtx, c: &Lwm2mConfig) -> anyhow::Result<Arc<Objects>> {
    let held = ctx
        .resources
        .get_or_init(|| Arc::new(Objects::default()) as Arc<dyn GatewayResources>)
        .clone();
    let objects = held
        .as_any()
        .downcast::<Objects>()
        .map_err(|_| anyhow::anyhow!("gateway.lwm2m: its resources are not object definitions"))?;
    if let Some(dir) = &c.xml_dir {
        objects.load_dir(dir)?;
    }
    Ok(objects)
}

impl Gateway for Lwm2m {
    type Config = Lwm2mConfig;
    const NAME: &'static str = "lwm2m";
    const PROTOCOL: &'static str = "lwm2m";
    const FRAMES: &'static [&'static str] = crate::frame::NAMES;
    const LISTENER_TYPES: &'static [ListenerType] = &[ListenerType::Udp, ListenerType::Dtls];
    const KEY_STATUS: KeyTable = KEY_STATUS;

    fn enabled(config: &Lwm2mConfig) -> bool {
        config.enable
    }

    fn listeners(config: &Lwm2mConfig) -> &GatewayListeners {
        &config.listeners
    }

    fn authentication(config: &Lwm2mConfig) -> Option<&AuthnConfig> {
        config.authentication.as_ref()
    }

    fn common(c: &Lwm2mConfig) -> CommonSettings {
        common_settings(
            &c.mountpoint,
            c.idle_timeout.as_std(),
            c.enable_stats,
            &Default::default(),
        )
    }

    fn validate(config: &Lwm2mConfig) -> Result<(), ConfigError> {
        config.validate()
    }

    fn restart_listeners(old: &Lwm2mConfig, new: &Lwm2mConfig) -> bool {
        old.lifetime_min != new.lifetime_min
            || old.lifetime_max != new.lifetime_max
            || old.qmode_time_window != new.qmode_time_window
            || old.auto_observe != new.auto_observe
            || old.update_msg_publish_condition != new.update_msg_publish_condition
            || old.translators != new.translators
            || old.xml_dir != new.xml_dir
    }

    async fn start(
        ctx: Arc<GatewayCtx>,
        c: &Lwm2mConfig,
        kind: ListenerType,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<Box<dyn Listening>> {
        let id = format!("{}:{}:{name}", Self::NAME, kind.as_str());
        let objects = objects_of(&ctx, c)?;
        let settings = Arc::new(Lwm2mSettings {
            lifetimes: Lifetimes {
                min: secs(c.lifetime_min.as_std()),
                max: secs(c.lifetime_max.as_std()),
            },
            qmode_time_window: c.qmode_time_window.as_std(),
            auto_observe: c.auto_observe,
            update_condition: c.update_msg_publish_condition,
            translators: c.translators.clone(),
            listener_mountpoint: l.mountpoint.clone(),
            session: ctx.settings().session,
        });
        let protocol = Arc::new(Lwm2mProtocol::new(ctx.clone(), settings, objects));
        junction_dtls::start_datagram(ctx, protocol, kind, id, l).await
    }
}

fn secs(d: std::time::Duration) -> u32 {
    d.as_secs().min(u64::from(u32::MAX)) as u32
}
