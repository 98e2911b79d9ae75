//! Running gateways: load, update (diffing listeners, keeping live connections) and
//! unload, from the typed `gateway.<name>` configuration.
//!
//! One generic [`GatewayRunner`] does the lifecycle for every gateway; what differs per
//! protocol (its settings, how one listener starts) is a [`GatewayKind`].

use crate::transport_opts::{apply_proxy_protocol, apply_ssl_options, apply_tcp_options};
use anyhow::Context;
use junction_auth::AuthnChains;
use junction_broker::{Broker, KickReason};
use junction_config::authn::AuthnConfig;
use junction_config::{
    ClientInfoOverride, GatewayListener, GatewayListeners, MqttSnGateway, StompGateway,
};
use junction_gateway::{CommonSettings, GatewayCtx};
use junction_session::SessionLimits;
use junction_transport::{AccessList, ListenerHandle, ListenerKind, ListenerOptions};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// A started listener of any transport.
pub trait Listening: Send + Sized {
    /// Listener id, `<gateway>:<type>:<name>`.
    fn id(&self) -> &str;
    /// The bound address.
    fn local_addr(&self) -> SocketAddr;
    /// Stop accepting and release the address.
    fn shutdown(self) -> impl Future<Output = ()> + Send;
}

impl Listening for ListenerHandle {
    fn id(&self) -> &str {
        &self.id
    }
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    fn shutdown(self) -> impl Future<Output = ()> + Send {
        ListenerHandle::shutdown(self)
    }
}

impl Listening for junction_gw_mqttsn::UdpListenerHandle {
    fn id(&self) -> &str {
        &self.id
    }
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    fn shutdown(self) -> impl Future<Output = ()> + Send {
        junction_gw_mqttsn::UdpListenerHandle::shutdown(self)
    }
}

/// What one gateway protocol contributes to the generic lifecycle.
pub trait GatewayKind: Send + Sync + 'static {
    /// The typed `gateway.<name>` section.
    type Config: Clone + Send + Sync;
    /// Its started listeners.
    type Handle: Listening;
    /// Config key and client-id namespace.
    const NAME: &'static str;
    /// Protocol name in ClientInfo and `$SYS` topics.
    const PROTOCOL: &'static str;
    /// `enable`.
    fn enabled(config: &Self::Config) -> bool;
    /// `listeners`.
    fn listeners(config: &Self::Config) -> &GatewayListeners;
    /// `authentication`: the gateway's global authenticator.
    fn authentication(config: &Self::Config) -> Option<&AuthnConfig>;
    /// The common keys.
    fn common(config: &Self::Config) -> CommonSettings;
    /// True if a change between two configs needs every listener restarted (settings the
    /// listeners captured when they started).
    fn restart_listeners(old: &Self::Config, new: &Self::Config) -> bool;
    /// Start one listener.
    fn start(
        ctx: Arc<GatewayCtx>,
        config: &Self::Config,
        kind: &'static str,
        name: &str,
        listener: &GatewayListener,
    ) -> impl Future<Output = anyhow::Result<Self::Handle>> + Send;
}

#[derive(Debug)]
struct Running<H> {
    config: GatewayListener,
    handle: H,
}

/// What every gateway gets from the node.
#[derive(Debug, Clone)]
pub struct GatewayEnv {
    /// The broker.
    pub broker: Arc<Broker>,
    /// The authentication chains.
    pub authn: Arc<AuthnChains>,
    /// The zone's session limits (`mqtt.*`).
    pub session: SessionLimits,
}

/// A loaded gateway.
#[derive(Debug)]
pub struct GatewayRunner<G: GatewayKind> {
    /// The gateway's context (clients, counters).
    pub ctx: Arc<GatewayCtx>,
    session: SessionLimits,
    config: G::Config,
    /// By `<type>:<name>`.
    listeners: BTreeMap<String, Running<G::Handle>>,
}

impl<G: GatewayKind> GatewayRunner<G> {
    /// Load the gateway: install its authentication chains, start every enabled listener.
    pub async fn load(env: &GatewayEnv, config: &G::Config) -> anyhow::Result<Self> {
        let common = CommonSettings {
            session: env.session,
            ..G::common(config)
        };
        let ctx = GatewayCtx::with_authn(
            G::NAME,
            G::PROTOCOL,
            env.broker.clone(),
            common,
            env.authn.clone(),
        );
        let mut runner = GatewayRunner {
            ctx,
            session: env.session,
            config: config.clone(),
            listeners: BTreeMap::new(),
        };
        runner.install_global_chain(config)?;
        runner.apply(config, false).await?;
        Ok(runner)
    }

    /// `gateway.<name>.authentication` becomes the chain `<protocol>:global`.
    fn install_global_chain(&self, config: &G::Config) -> anyhow::Result<()> {
        let chain = match G::authentication(config) {
            Some(a) => vec![junction_auth::build(a)
                .with_context(|| format!("gateway.{}.authentication", G::NAME))?],
            None => Vec::new(),
        };
        self.ctx.authn.set_chain(&self.ctx.global_chain, chain);
        Ok(())
    }

    /// Apply a new configuration at run time. Connections stay up: listeners whose
    /// settings did not change keep running; changed ones are restarted on their address;
    /// removed ones stop; new ones start. Gateway-level settings (mountpoint, …) apply to
    /// connections made from now on, as in EMQX.
    pub async fn update(&mut self, config: &G::Config) -> anyhow::Result<()> {
        let restart = G::restart_listeners(&self.config, config);
        self.install_global_chain(config)?;
        self.config = config.clone();
        self.ctx.set_settings(CommonSettings {
            session: self.session,
            ..G::common(config)
        });
        self.apply(config, restart).await
    }

    async fn apply(&mut self, config: &G::Config, restart_all: bool) -> anyhow::Result<()> {
        let wanted: BTreeMap<String, (&'static str, &str, &GatewayListener)> = G::listeners(config)
            .iter()
            .filter(|(_, _, l)| l.enable)
            .map(|(k, n, l)| (format!("{k}:{n}"), (k, n, l)))
            .collect();
        let stale: Vec<String> = self
            .listeners
            .iter()
            .filter(|(key, running)| {
                restart_all
                    || wanted
                        .get(*key)
                        .is_none_or(|(_, _, l)| **l != running.config)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(running) = self.listeners.remove(&key) {
                self.ctx.authn.remove_chain(running.handle.id());
                running.handle.shutdown().await;
            }
        }
        // Every wanted listener's authentication settings, before any client can arrive.
        for (kind, name, l) in wanted.values() {
            let id = format!("{}:{kind}:{name}", G::NAME);
            let chain = match &l.authentication {
                Some(a) => vec![junction_auth::build(a).with_context(|| {
                    format!("gateway.{}.listeners.{kind}.{name}.authentication", G::NAME)
                })?],
                None => Vec::new(),
            };
            self.ctx.authn.set_chain(&id, chain);
            self.ctx.authn.set_listener_authn(&id, l.enable_authn);
        }
        for (key, (kind, name, l)) in wanted {
            if self.listeners.contains_key(&key) {
                continue;
            }
            let handle = G::start(self.ctx.clone(), config, kind, name, l).await?;
            tracing::info!(listener = %handle.id(), addr = %handle.local_addr(), "listening");
            self.listeners.insert(
                key,
                Running {
                    config: l.clone(),
                    handle,
                },
            );
        }
        Ok(())
    }

    /// Stop every listener and disconnect every client.
    pub async fn unload(mut self) {
        for (_, running) in std::mem::take(&mut self.listeners) {
            self.ctx.authn.remove_chain(running.handle.id());
            running.handle.shutdown().await;
        }
        self.ctx.authn.remove_chain(&self.ctx.global_chain);
        for client in self.ctx.clients.list() {
            self.ctx
                .clients
                .kick(&client.clientid, KickReason::Shutdown);
        }
    }

    /// Bound addresses by listener id.
    pub fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .values()
            .map(|r| (r.handle.id().to_string(), r.handle.local_addr()))
            .collect()
    }
}

/// Load, update or unload a gateway in `slot` so that it matches `config`.
pub async fn reconcile<G: GatewayKind>(
    slot: &mut Option<GatewayRunner<G>>,
    env: &GatewayEnv,
    config: &G::Config,
) -> anyhow::Result<()> {
    match (slot.take(), G::enabled(config)) {
        (None, false) => {}
        (None, true) => *slot = Some(GatewayRunner::load(env, config).await?),
        (Some(running), false) => running.unload().await,
        (Some(mut running), true) => {
            let result = running.update(config).await;
            *slot = Some(running);
            result?;
        }
    }
    Ok(())
}

fn common_settings(
    mountpoint: &str,
    idle_timeout: std::time::Duration,
    enable_stats: bool,
    o: &ClientInfoOverride,
) -> CommonSettings {
    CommonSettings {
        mountpoint: mountpoint.to_string(),
        idle_timeout,
        enable_stats,
        override_clientid: o.clientid.clone(),
        override_username: o.username.clone(),
        override_password: o.password.clone(),
        // Filled in by the runner from the zone.
        session: SessionLimits::default(),
    }
}

/// `access_rules` as a listener applies them: the first rule that matches the peer
/// decides; a peer no rule matches is let in (EMQX's esockd).
pub(crate) fn access_list(rules: &[junction_config::AccessRule]) -> AccessList {
    let only_allow_all = rules.iter().all(|r| {
        r.action == junction_config::AccessAction::Allow
            && r.targets.contains(&junction_config::AccessTarget::All)
    });
    if only_allow_all {
        return AccessList::default();
    }
    let rules = rules.to_vec();
    AccessList::new(move |ip| {
        rules
            .iter()
            .find(|r| r.matches(ip))
            .is_none_or(|r| r.action == junction_config::AccessAction::Allow)
    })
}

fn bind_of(
    gateway: &str,
    kind: &str,
    name: &str,
    l: &GatewayListener,
) -> anyhow::Result<SocketAddr> {
    l.bind
        .map(|b| b.0)
        .with_context(|| format!("gateway.{gateway}.listeners.{kind}.{name}.bind is required"))
}

/// Transport options of a TCP or TLS gateway listener (`<gateway>:<type>:<name>`).
fn tcp_listener_options(
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
    let mut opts = ListenerOptions::new(id, tkind, bind_of(gateway, kind, name, l)?);
    opts.max_connections = l.max_connections.map(|n| n as usize);
    opts.max_conn_rate = l.max_conn_rate.map(|n| n.min(u32::MAX as u64) as u32);
    if let Some(t) = &l.tcp_options {
        apply_tcp_options(&mut opts, t);
    }
    opts.acceptors = (l.acceptors as usize).clamp(1, 1024);
    opts.access = access_list(&l.access_rules);
    apply_proxy_protocol(&mut opts, l.proxy_protocol, l.proxy_protocol_timeout);
    if let Some(ssl) = &l.ssl_options {
        let path = format!("gateway.{gateway}.listeners.{kind}.{name}");
        apply_ssl_options(&mut opts, ssl, &path)?;
    }
    Ok(opts)
}

/// The STOMP gateway.
#[derive(Debug)]
pub enum Stomp {}

impl GatewayKind for Stomp {
    type Config = StompGateway;
    type Handle = ListenerHandle;
    const NAME: &'static str = "stomp";
    const PROTOCOL: &'static str = "stomp";

    fn enabled(config: &StompGateway) -> bool {
        config.enable
    }

    fn listeners(config: &StompGateway) -> &GatewayListeners {
        &config.listeners
    }

    fn authentication(config: &StompGateway) -> Option<&AuthnConfig> {
        config.authentication.as_ref()
    }

    fn common(c: &StompGateway) -> CommonSettings {
        common_settings(
            &c.mountpoint,
            c.idle_timeout.as_std(),
            c.enable_stats,
            &c.clientinfo_override,
        )
    }

    fn restart_listeners(old: &StompGateway, new: &StompGateway) -> bool {
        old.frame != new.frame
            || old.transaction != new.transaction
            || old.max_subscriptions != new.max_subscriptions
    }

    async fn start(
        ctx: Arc<GatewayCtx>,
        c: &StompGateway,
        kind: &'static str,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<ListenerHandle> {
        let opts = tcp_listener_options(Self::NAME, kind, name, l)?;
        let settings = Arc::new(junction_gw_stomp::StompSettings {
            limits: junction_codec_stomp::Limits {
                max_headers: c.frame.max_headers as usize,
                max_headers_length: c.frame.max_headers_length as usize,
                max_body_length: c.frame.max_body_length as usize,
            },
            listener_mountpoint: l.mountpoint.clone(),
            bounds: junction_gw_stomp::ConnBounds {
                max_transactions: c.transaction.max_open as usize,
                max_tx_frames: c.transaction.max_frames as usize,
                max_tx_bytes: c.transaction.max_bytes.as_u64().min(usize::MAX as u64) as usize,
                tx_timeout: c.transaction.timeout.as_std(),
                max_subscriptions: c.max_subscriptions as usize,
            },
        });
        Ok(junction_transport::start(opts, move |accepted| {
            junction_gw_stomp::serve(ctx.clone(), settings.clone(), accepted)
        })
        .await?)
    }
}

/// The MQTT-SN gateway.
#[derive(Debug)]
pub enum MqttSn {}

impl GatewayKind for MqttSn {
    type Config = MqttSnGateway;
    type Handle = junction_gw_mqttsn::UdpListenerHandle;
    const NAME: &'static str = "mqttsn";
    const PROTOCOL: &'static str = "mqtt-sn";

    fn enabled(config: &MqttSnGateway) -> bool {
        config.enable
    }

    fn listeners(config: &MqttSnGateway) -> &GatewayListeners {
        &config.listeners
    }

    fn authentication(config: &MqttSnGateway) -> Option<&AuthnConfig> {
        config.authentication.as_ref()
    }

    fn common(c: &MqttSnGateway) -> CommonSettings {
        common_settings(
            &c.mountpoint,
            c.idle_timeout.as_std(),
            c.enable_stats,
            &c.clientinfo_override,
        )
    }

    fn restart_listeners(old: &MqttSnGateway, new: &MqttSnGateway) -> bool {
        old.predefined != new.predefined
            || old.gateway_id != new.gateway_id
            || old.broadcast != new.broadcast
            || old.enable_qos3 != new.enable_qos3
            || old.subs_resume != new.subs_resume
    }

    async fn start(
        ctx: Arc<GatewayCtx>,
        c: &MqttSnGateway,
        kind: &'static str,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<junction_gw_mqttsn::UdpListenerHandle> {
        let id = format!("{}:{kind}:{name}", Self::NAME);
        if kind != "udp" {
            anyhow::bail!("{id}: {kind} listeners are not supported yet");
        }
        let bind = bind_of(Self::NAME, kind, name, l)?;
        let udp = l.udp_options.clone().unwrap_or_default();
        let settings = Arc::new(junction_gw_mqttsn::MqttSnSettings {
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
            access: access_list(&l.access_rules),
            udp: junction_gw_mqttsn::UdpSettings {
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
            ..junction_gw_mqttsn::MqttSnSettings::default()
        });
        junction_gw_mqttsn::start_udp(ctx, settings, id.clone(), bind)
            .await
            .with_context(|| format!("listener {id}: cannot bind {bind}"))
    }
}
