//! The STOMP gateway as the framework registers it.

use crate::config::{StompConfig, KEY_STATUS};
use crate::{ConnBounds, StompSettings};
use junction_config::authn::AuthnConfig;
use junction_config::{GatewayListener, GatewayListeners, KeyTable, ListenerType};
use junction_gateway::listener_opts::stream_listener_options;
use junction_gateway::{common_settings, CommonSettings, Gateway, GatewayCtx, Listening};
use std::sync::Arc;

/// The STOMP gateway: `gateway.stomp`, tcp and ssl listeners.
#[derive(Debug)]
pub enum Stomp {}

impl Gateway for Stomp {
    type Config = StompConfig;
    const NAME: &'static str = "stomp";
    const PROTOCOL: &'static str = "stomp";
    const FRAMES: &'static [&'static str] = crate::FRAMES;
    const LISTENER_TYPES: &'static [ListenerType] = &[ListenerType::Tcp, ListenerType::Ssl];
    const KEY_STATUS: KeyTable = KEY_STATUS;

    fn enabled(config: &StompConfig) -> bool {
        config.enable
    }

    fn listeners(config: &StompConfig) -> &GatewayListeners {
        &config.listeners
    }

    fn authentication(config: &StompConfig) -> Option<&AuthnConfig> {
        config.authentication.as_ref()
    }

    fn common(c: &StompConfig) -> CommonSettings {
        common_settings(
            &c.mountpoint,
            c.idle_timeout.as_std(),
            c.enable_stats,
            &c.clientinfo_override,
        )
    }

    fn restart_listeners(old: &StompConfig, new: &StompConfig) -> bool {
        old.frame != new.frame
            || old.transaction != new.transaction
            || old.max_subscriptions != new.max_subscriptions
    }

    async fn start(
        ctx: Arc<GatewayCtx>,
        c: &StompConfig,
        kind: ListenerType,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<Box<dyn Listening>> {
        let id = format!("{}:{}:{name}", Self::NAME, kind.as_str());
        let opts = stream_listener_options(&id, kind.as_str(), l)?;
        let settings = Arc::new(StompSettings {
            limits: junction_codec_stomp::Limits {
                max_headers: c.frame.max_headers as usize,
                max_headers_length: c.frame.max_headers_length as usize,
                max_body_length: c.frame.max_body_length as usize,
            },
            listener_mountpoint: l.mountpoint.clone(),
            bounds: ConnBounds {
                max_transactions: c.transaction.max_open as usize,
                max_tx_frames: c.transaction.max_frames as usize,
                max_tx_bytes: c.transaction.max_bytes.as_u64().min(usize::MAX as u64) as usize,
                tx_timeout: c.transaction.timeout.as_std(),
                max_subscriptions: c.max_subscriptions as usize,
            },
        });
        let handle = junction_transport::start(opts, move |accepted| {
            crate::serve(ctx.clone(), settings.clone(), accepted)
        })
        .await?;
        Ok(Box::new(handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_config::{Bind, Config};

    #[test]
    fn the_default_is_tcp_61613_with_emqx_frame_limits() {
        let config: StompConfig = Config::default().gateway.section("stomp").unwrap();
        assert_eq!(config, StompConfig::default());
        assert!(config.enable);
        assert_eq!(config.frame.max_headers, 10);
        assert_eq!(config.listeners.tcp["default"].bind, Some(Bind::any(61613)));
    }

    #[test]
    fn an_emqx_stomp_section_loads_unchanged_and_errors_name_the_key() {
        let config = Config::from_str_with_env(
            r#"gateway.stomp {
              mountpoint = "stomp/"
              frame { max_headers = 10, max_headers_length = 1024, max_body_length = 65536 }
              listeners.tcp.default { bind = 61613, acceptors = 16, max_connections = 1024000, max_conn_rate = 1000 }
            }"#,
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        let stomp: StompConfig = config.gateway.section("stomp").unwrap();
        assert_eq!(stomp.mountpoint, "stomp/");
        assert_eq!(
            stomp.listeners.tcp["default"].max_connections,
            Some(1_024_000)
        );
        let config = Config::from_str_with_env(
            "gateway.stomp.frame.max_header = 3",
            Vec::<(String, String)>::new(),
        )
        .unwrap();
        match config.gateway.section::<StompConfig>("stomp") {
            Err(junction_config::ConfigError::Invalid { key_path, .. }) => {
                assert_eq!(key_path, "gateway.stomp.frame.max_header")
            }
            other => panic!("{other:?}"),
        }
    }
}
