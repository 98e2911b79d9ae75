//! Running gateways: load, update (diffing listeners, keeping live connections) and
//! unload, from the typed `gateway.<name>` configuration.

use anyhow::Context;
use junction_broker::{Broker, KickReason};
use junction_config::{GatewayListener, SslVerify, StompGateway};
use junction_gateway::{CommonSettings, GatewayCtx};
use junction_gw_stomp::StompSettings;
use junction_transport::{ListenerHandle, ListenerKind, ListenerOptions, TlsOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running listener of a gateway, with the configuration it was started from.
#[derive(Debug)]
struct RunningListener {
    config: GatewayListener,
    handle: ListenerHandle,
}

/// A loaded STOMP gateway.
#[derive(Debug)]
pub struct StompRunner {
    /// The gateway's context (clients, counters).
    pub ctx: Arc<GatewayCtx>,
    config: StompGateway,
    /// By `<type>:<name>`.
    listeners: BTreeMap<String, RunningListener>,
}

fn common_settings(
    mountpoint: &str,
    idle_timeout: std::time::Duration,
    enable_stats: bool,
    o: &junction_config::ClientInfoOverride,
) -> CommonSettings {
    CommonSettings {
        mountpoint: mountpoint.to_string(),
        idle_timeout,
        enable_stats,
        override_clientid: o.clientid.clone(),
        override_username: o.username.clone(),
        override_password: o.password.clone(),
    }
}

fn stomp_common(c: &StompGateway) -> CommonSettings {
    common_settings(
        &c.mountpoint,
        c.idle_timeout.as_std(),
        c.enable_stats,
        &c.clientinfo_override,
    )
}

fn stomp_settings(c: &StompGateway, l: &GatewayListener) -> StompSettings {
    StompSettings {
        limits: junction_codec_stomp::Limits {
            max_headers: c.frame.max_headers as usize,
            max_headers_length: c.frame.max_headers_length as usize,
            max_body_length: c.frame.max_body_length as usize,
        },
        listener_mountpoint: l.mountpoint.clone(),
    }
}

/// Transport options of a gateway listener (`<gateway>:<type>:<name>`).
fn listener_options(
    gateway: &str,
    kind: &str,
    name: &str,
    l: &GatewayListener,
) -> anyhow::Result<ListenerOptions> {
    let id = format!("{gateway}:{kind}:{name}");
    let tkind = match kind {
        "tcp" => ListenerKind::Tcp,
        "ssl" => ListenerKind::Ssl,
        other => anyhow::bail!("{id}: {other} listeners are not supported yet"),
    };
    let bind = l
        .bind
        .with_context(|| format!("gateway.{gateway}.listeners.{kind}.{name}.bind is required"))?;
    let mut opts = ListenerOptions::new(id, tkind, bind.0);
    opts.max_connections = l.max_connections.map(|n| n as usize);
    opts.max_conn_rate = l.max_conn_rate.map(|n| n.min(u32::MAX as u64) as u32);
    if let Some(t) = &l.tcp_options {
        opts.nodelay = t.nodelay;
        opts.backlog = t.backlog;
    }
    if let Some(ssl) = &l.ssl_options {
        let path =
            |what: &str| format!("gateway.{gateway}.listeners.{kind}.{name}.ssl_options.{what}");
        opts.tls = Some(TlsOptions {
            certfile: ssl
                .certfile
                .clone()
                .with_context(|| path("certfile"))?
                .into(),
            keyfile: ssl.keyfile.clone().with_context(|| path("keyfile"))?.into(),
            cacertfile: ssl.cacertfile.clone().map(Into::into),
            verify_peer: ssl.verify == SslVerify::VerifyPeer,
            fail_if_no_peer_cert: ssl.fail_if_no_peer_cert,
        });
        opts.handshake_timeout = ssl.handshake_timeout.as_std();
    }
    Ok(opts)
}

impl StompRunner {
    /// Load the gateway: start every enabled listener.
    pub async fn load(broker: Arc<Broker>, config: &StompGateway) -> anyhow::Result<StompRunner> {
        let ctx = GatewayCtx::new("stomp", "stomp", broker, stomp_common(config));
        let mut runner = StompRunner {
            ctx,
            config: config.clone(),
            listeners: BTreeMap::new(),
        };
        for (kind, name, l) in config.listeners.iter() {
            if l.enable {
                runner.start_listener(kind, name, l).await?;
            }
        }
        Ok(runner)
    }

    async fn start_listener(
        &mut self,
        kind: &str,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<()> {
        let opts = listener_options("stomp", kind, name, l)?;
        let settings = Arc::new(stomp_settings(&self.config, l));
        let ctx = self.ctx.clone();
        let handle = junction_transport::start(opts, move |accepted| {
            junction_gw_stomp::serve(ctx.clone(), settings.clone(), accepted)
        })
        .await?;
        tracing::info!(listener = %handle.id, addr = %handle.local_addr, "listening");
        self.listeners.insert(
            format!("{kind}:{name}"),
            RunningListener {
                config: l.clone(),
                handle,
            },
        );
        Ok(())
    }

    /// Apply a new configuration at run time. Connections stay up: listeners whose
    /// settings did not change keep running; changed ones are restarted on their address;
    /// removed ones stop accepting; new ones start. Gateway-level settings (mountpoint, …)
    /// apply to connections made from now on, as in EMQX.
    pub async fn update(&mut self, config: &StompGateway) -> anyhow::Result<()> {
        let frame_changed = config.frame != self.config.frame;
        self.config = config.clone();
        self.ctx.set_settings(stomp_common(config));
        let wanted: BTreeMap<String, (&'static str, &str, &GatewayListener)> = config
            .listeners
            .iter()
            .filter(|(_, _, l)| l.enable)
            .map(|(k, n, l)| (format!("{k}:{n}"), (k, n, l)))
            .collect();
        let stale: Vec<String> = self
            .listeners
            .iter()
            .filter(|(key, running)| {
                wanted
                    .get(*key)
                    .is_none_or(|(_, _, l)| **l != running.config || frame_changed)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(running) = self.listeners.remove(&key) {
                running.handle.shutdown().await;
            }
        }
        for (key, (kind, name, l)) in wanted {
            if !self.listeners.contains_key(&key) {
                self.start_listener(kind, name, l).await?;
            }
        }
        Ok(())
    }

    /// Stop every listener and disconnect every client.
    pub async fn unload(mut self) {
        for (_, running) in std::mem::take(&mut self.listeners) {
            running.handle.shutdown().await;
        }
        for client in self.ctx.clients.list() {
            self.ctx
                .clients
                .kick(&client.clientid, KickReason::Shutdown);
        }
    }

    /// Bound addresses by listener id (`stomp:tcp:default`).
    pub fn addrs(&self) -> impl Iterator<Item = (&str, SocketAddr)> {
        self.listeners
            .values()
            .map(|r| (r.handle.id.as_str(), r.handle.local_addr))
    }
}
