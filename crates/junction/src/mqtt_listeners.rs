//! The MQTT listeners (`listeners.<type>.<name>`): started from the configuration, and
//! reconciled with a new one when the file is reloaded. A listener whose settings did
//! not change keeps running; one whose `enable_authn` alone changed keeps its socket; a
//! changed one is closed and opened again with its new settings (its live connections
//! stay, as every listener stop leaves them); a removed or disabled one is closed. The
//! `mqtt.*` settings a connection reads are taken when it is accepted, so a new value
//! applies to the next connection and not to those already open.

use crate::listener_options;
use junction_auth::AuthnChains;
use junction_config::{Config, Listener, ListenerKind};
use junction_gateway::GatewayCtx;
use junction_gw_mqtt::MqttSettings;
use junction_transport::ListenerHandle;
use parking_lot::RwLock;
use std::sync::Arc;

/// The running MQTT listeners.
pub(crate) struct MqttListeners {
    ctx: Arc<GatewayCtx>,
    authn: Arc<AuthnChains>,
    /// The `mqtt.*` settings new connections take (before a listener's mountpoint).
    settings: RwLock<Arc<MqttSettings>>,
    running: tokio::sync::Mutex<Vec<Running>>,
    /// What the API lists, refreshed after every change.
    listed: Arc<RwLock<Vec<junction_api::mqtt::MqttListener>>>,
}

struct Running {
    kind: ListenerKind,
    name: String,
    config: Listener,
    /// The `mqtt.max_packet_size` it was opened with (a WebSocket message's bound).
    max_packet_size: u32,
    /// The settings this listener's next connection takes.
    settings: Arc<RwLock<Arc<MqttSettings>>>,
    handle: ListenerHandle,
}

impl Running {
    fn id(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.name)
    }
}

impl MqttListeners {
    /// Start every listener `config` enables, for connections run with `settings`.
    pub(crate) async fn start(
        config: &Config,
        settings: Arc<MqttSettings>,
        ctx: Arc<GatewayCtx>,
        authn: Arc<AuthnChains>,
    ) -> anyhow::Result<MqttListeners> {
        let listeners = MqttListeners {
            ctx,
            authn,
            settings: RwLock::new(settings),
            running: tokio::sync::Mutex::new(Vec::new()),
            listed: Arc::default(),
        };
        {
            let mut running = listeners.running.lock().await;
            for (kind, name, l) in config.listeners.enabled() {
                running.push(listeners.open(kind, name, l).await?);
            }
            listeners.relist(&running);
        }
        Ok(listeners)
    }

    /// The listeners as the API lists them, kept current.
    pub(crate) fn listed(&self) -> Arc<RwLock<Vec<junction_api::mqtt::MqttListener>>> {
        self.listed.clone()
    }

    /// Every running listener's id and bound address.
    pub(crate) fn addresses(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.listed
            .read()
            .iter()
            .map(|l| (l.id.clone(), l.bind))
            .collect()
    }

    /// Bring the listeners and the connection settings to `config`'s: see the module
    /// documentation. On an error (a port taken, a certificate missing) the listener at
    /// fault is reopened with its old settings, and the error names it.
    pub(crate) async fn reconcile(
        &self,
        config: &Config,
        settings: Arc<MqttSettings>,
    ) -> anyhow::Result<()> {
        let mut running = self.running.lock().await;
        if **self.settings.read() != *settings {
            *self.settings.write() = settings;
            for r in running.iter() {
                *r.settings.write() = self.with_mountpoint(&r.config);
            }
        }
        let wanted: Vec<(ListenerKind, &str, &Listener)> = config.listeners.enabled().collect();
        // Removed or disabled listeners first, so their ports are free for new ones.
        let mut kept = Vec::new();
        for r in running.drain(..) {
            if wanted
                .iter()
                .any(|(kind, name, _)| *kind == r.kind && *name == r.name)
            {
                kept.push(r);
            } else {
                tracing::info!(listener = %r.id(), "listener removed");
                r.handle.shutdown().await;
            }
        }
        let mut result = Ok(());
        for (kind, name, l) in wanted {
            let at = kept.iter().position(|r| r.kind == kind && r.name == name);
            let Some(at) = at else {
                match self.open(kind, name, l).await {
                    Ok(r) => kept.push(r),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                continue;
            };
            let max_packet_size = self.settings.read().max_packet_size;
            let r = &mut kept[at];
            let ws = matches!(kind, ListenerKind::Ws | ListenerKind::Wss);
            if r.config == *l && (!ws || r.max_packet_size == max_packet_size) {
                continue;
            }
            let same_socket = Listener {
                enable_authn: r.config.enable_authn,
                ..l.clone()
            } == r.config;
            if same_socket && (!ws || r.max_packet_size == max_packet_size) {
                self.authn.set_listener_authn(&r.id(), l.enable_authn);
                r.config.enable_authn = l.enable_authn;
                continue;
            }
            let old = kept.remove(at);
            let old_config = old.config.clone();
            old.handle.shutdown().await;
            match self.open(kind, name, l).await {
                Ok(r) => kept.push(r),
                Err(e) => {
                    // Back as it was; the error says why the change was not made.
                    if let Ok(r) = self.open(kind, name, &old_config).await {
                        kept.push(r);
                    }
                    result = Err(e);
                    break;
                }
            }
        }
        *running = kept;
        self.relist(&running);
        result
    }

    /// Stop accepting on every listener (live connections are left to the caller).
    pub(crate) async fn stop(&self) {
        for r in self.running.lock().await.drain(..) {
            r.handle.stop();
        }
    }

    /// The settings of a listener's connections: `mqtt.*` with its mountpoint.
    fn with_mountpoint(&self, l: &Listener) -> Arc<MqttSettings> {
        let base = self.settings.read().clone();
        if l.mountpoint.is_empty() {
            base
        } else {
            Arc::new(MqttSettings {
                mountpoint: l.mountpoint.clone(),
                ..(*base).clone()
            })
        }
    }

    async fn open(&self, kind: ListenerKind, name: &str, l: &Listener) -> anyhow::Result<Running> {
        let max_packet_size = self.settings.read().max_packet_size;
        let opts = listener_options(kind, name, l, max_packet_size)?;
        self.authn.set_listener_authn(&opts.id, l.enable_authn);
        let settings = Arc::new(RwLock::new(self.with_mountpoint(l)));
        let (ctx, cell) = (self.ctx.clone(), settings.clone());
        let handle = junction_transport::start(opts, move |accepted| {
            let m = cell.read().clone();
            junction_gw_mqtt::serve(ctx.clone(), m, accepted)
        })
        .await?;
        tracing::info!(listener = %handle.id, addr = %handle.local_addr, "listening");
        Ok(Running {
            kind,
            name: name.to_string(),
            config: l.clone(),
            max_packet_size,
            settings,
            handle,
        })
    }

    fn relist(&self, running: &[Running]) {
        *self.listed.write() = running
            .iter()
            .map(|r| junction_api::mqtt::MqttListener {
                id: r.id(),
                bind: r.handle.local_addr,
                max_connections: r.config.max_connections,
            })
            .collect();
    }
}

impl std::fmt::Debug for MqttListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttListeners")
            .field("listeners", &self.addresses())
            .finish()
    }
}
