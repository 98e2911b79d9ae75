//! A loaded gateway: load, update (diffing listeners, keeping live connections) and
//! unload, from its typed `gateway.<name>` section. One [`GatewayRunner`] does this for
//! every gateway; what differs per protocol is its [`Gateway`] implementation.

use crate::ctx::{CommonSettings, GatewayCtx};
use crate::kind::{Gateway, Listening};
use anyhow::Context;
use junction_auth::AuthnChains;
use junction_broker::{Broker, KickReason};
use junction_config::{ClientInfoOverride, GatewayListener, ListenerType};
use junction_session::SessionLimits;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

struct Running {
    config: GatewayListener,
    handle: Box<dyn Listening>,
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
    /// The node's TLS-PSK identities (`psk_authentication`), `None` when PSK is off.
    pub psk: Option<Arc<crate::driver::dtls::PskTable>>,
}

/// A loaded gateway.
pub struct GatewayRunner<G: Gateway> {
    /// The gateway's context (clients, counters).
    pub ctx: Arc<GatewayCtx>,
    session: SessionLimits,
    psk: Option<Arc<crate::driver::dtls::PskTable>>,
    config: G::Config,
    /// By `<type>:<name>`.
    listeners: BTreeMap<String, Running>,
}

impl<G: Gateway> std::fmt::Debug for GatewayRunner<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayRunner")
            .field("gateway", &G::NAME)
            .field("listeners", &self.listeners.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<G: Gateway> GatewayRunner<G> {
    /// Load the gateway: install its authentication chains, start every enabled listener.
    pub async fn load(env: &GatewayEnv, config: &G::Config) -> anyhow::Result<Self> {
        let common = CommonSettings {
            session: env.session,
            psk: env.psk.clone(),
            ..G::common(config)
        };
        let ctx = GatewayCtx::with_authn(
            G::NAME,
            G::PROTOCOL,
            G::FRAMES,
            env.broker.clone(),
            common,
            env.authn.clone(),
        );
        let mut runner = GatewayRunner {
            ctx,
            session: env.session,
            psk: env.psk.clone(),
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
            Some(a) => vec![self
                .ctx
                .authn
                .build(&self.ctx.global_chain, a)
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
            psk: self.psk.clone(),
            ..G::common(config)
        });
        self.apply(config, restart).await
    }

    async fn apply(&mut self, config: &G::Config, restart_all: bool) -> anyhow::Result<()> {
        let wanted: BTreeMap<String, (ListenerType, &str, &GatewayListener)> = G::listeners(config)
            .iter()
            .filter(|(_, _, l)| l.enable)
            .filter(|(kind, name, l)| {
                // A DTLS listener starts when it has credentials: PSK, or a certificate.
                let has = *kind != "dtls"
                    || self.psk.is_some()
                    || l.dtls_options.as_ref().is_some_and(|d| {
                        d.certfile.is_some() && d.keyfile.is_some()
                    });
                if !has {
                    tracing::info!(listener = %format!("{}:dtls:{name}", G::NAME), "not started: no psk_authentication and no dtls_options.certfile");
                }
                has
            })
            .filter_map(|(k, n, l)| {
                let kind = ListenerType::from_name(k)?;
                Some((format!("{k}:{n}"), (kind, n, l)))
            })
            .collect();
        let stale: Vec<String> = self
            .listeners
            .iter()
            .filter(|(key, running)| {
                restart_all
                    || wanted
                        .get(*key)
                        .is_none_or(|(_, _, l)| !same_socket(l, &running.config))
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
            let id = format!("{}:{}:{name}", G::NAME, kind.as_str());
            let chain = match &l.authentication {
                Some(a) => vec![self
                    .ctx
                    .authn
                    .build(&self.ctx.global_chain, a)
                    .with_context(|| {
                        format!(
                            "gateway.{}.listeners.{}.{name}.authentication",
                            G::NAME,
                            kind.as_str()
                        )
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

/// True if two settings of a listener differ at most in its authentication, which is its
/// chain's business (installed apart, before any client arrives): the listener keeps
/// running, and its connections with it.
fn same_socket(a: &GatewayListener, b: &GatewayListener) -> bool {
    let bare = |l: &GatewayListener| GatewayListener {
        authentication: None,
        enable_authn: true,
        ..l.clone()
    };
    bare(a) == bare(b)
}

/// Load, update or unload a gateway in `slot` so that it matches `config`.
pub async fn reconcile<G: Gateway>(
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

/// The common settings from the keys every gateway has.
pub fn common_settings(
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
        // Filled in by the runner from the zone and the node.
        session: SessionLimits::default(),
        psk: None,
    }
}
