//! The list of gateways a server runs. Registration is data: the binary builds one
//! [`Registry`] with a line per gateway (`.with::<junction_gw_stomp::Stomp>()`), and config
//! checks, the key list, loading, run-time updates, lookups and shutdown iterate it.

use crate::ctx::GatewayCtx;
use crate::kind::{BoxFuture, Gateway};
use crate::runner::{reconcile, GatewayEnv, GatewayRunner};
use junction_config::{
    check_binds, keys_of, not_supported, BindUse, Config, ConfigError, Gateways, KeyTable,
    EMQX_GATEWAYS,
};
use std::net::SocketAddr;
use std::sync::Arc;

/// One registered gateway, loaded or not (a [`Gateway`] with its type erased).
trait Slot: Send + Sync {
    fn name(&self) -> &'static str;
    fn module(&self) -> &'static str;
    fn key_status(&self) -> KeyTable;
    fn accepted_keys(&self) -> Vec<String>;
    /// Read and check its section; the addresses its enabled listeners bind.
    fn check(&self, sections: &Gateways) -> Result<Vec<BindUse>, ConfigError>;
    /// Its section read with every default filled in, as JSON.
    fn filled(&self, sections: &Gateways) -> Result<serde_json::Value, ConfigError>;
    fn apply<'a>(
        &'a self,
        env: &'a GatewayEnv,
        sections: &'a Gateways,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    fn ctx(&self) -> BoxFuture<'_, Option<Arc<GatewayCtx>>>;
    fn addrs(&self) -> Vec<(String, SocketAddr)>;
    fn unload(&self) -> BoxFuture<'_, ()>;
}

struct Registered<G: Gateway> {
    running: tokio::sync::Mutex<Option<GatewayRunner<G>>>,
    /// The listeners' addresses, refreshed after every change (read without awaiting).
    addrs: parking_lot::Mutex<Vec<(String, SocketAddr)>>,
}

impl<G: Gateway> Registered<G> {
    fn config(sections: &Gateways) -> Result<G::Config, ConfigError> {
        let config: G::Config = sections.section(G::NAME)?;
        G::listeners(&config).check(G::NAME, G::LISTENER_TYPES)?;
        G::validate(&config)?;
        Ok(config)
    }
}

impl<G: Gateway> Slot for Registered<G> {
    fn name(&self) -> &'static str {
        G::NAME
    }

    fn module(&self) -> &'static str {
        std::any::type_name::<G>()
    }

    fn key_status(&self) -> KeyTable {
        G::KEY_STATUS
    }

    fn accepted_keys(&self) -> Vec<String> {
        keys_of::<G::Config>(&format!("gateway.{}", G::NAME))
    }

    fn check(&self, sections: &Gateways) -> Result<Vec<BindUse>, ConfigError> {
        let config = Self::config(sections)?;
        Ok(if G::enabled(&config) {
            G::listeners(&config).binds(G::NAME)
        } else {
            Vec::new()
        })
    }

    fn filled(&self, sections: &Gateways) -> Result<serde_json::Value, ConfigError> {
        let config = Self::config(sections)?;
        serde_json::to_value(&config)
            .map_err(|e| ConfigError::invalid(format!("gateway.{}", G::NAME), e.to_string()))
    }

    fn apply<'a>(
        &'a self,
        env: &'a GatewayEnv,
        sections: &'a Gateways,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let config = Self::config(sections)?;
            let mut running = self.running.lock().await;
            let result = reconcile(&mut running, env, &config).await;
            *self.addrs.lock() = running.as_ref().map(|r| r.addrs()).unwrap_or_default();
            result
        })
    }

    fn ctx(&self) -> BoxFuture<'_, Option<Arc<GatewayCtx>>> {
        Box::pin(async move { self.running.lock().await.as_ref().map(|r| r.ctx.clone()) })
    }

    fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.addrs.lock().clone()
    }

    fn unload(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let runner = self.running.lock().await.take();
            self.addrs.lock().clear();
            if let Some(runner) = runner {
                runner.unload().await;
            }
        })
    }
}

/// The gateways a server runs.
#[derive(Default)]
pub struct Registry {
    slots: Vec<Box<dyn Slot>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// No gateways.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Add gateway `G`.
    ///
    /// # Panics
    /// If a gateway of the same name is already registered.
    pub fn with<G: Gateway>(mut self) -> Registry {
        assert!(
            !self.names().any(|n| n == G::NAME),
            "gateway {} registered twice",
            G::NAME
        );
        self.slots.push(Box::new(Registered::<G> {
            running: tokio::sync::Mutex::new(None),
            addrs: parking_lot::Mutex::new(Vec::new()),
        }));
        self
    }

    /// The registered gateways' names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.slots.iter().map(|s| s.name())
    }

    /// Check every gateway section of `config`: a section no registered gateway owns is
    /// refused ("not supported yet" for one EMQX has), each gateway's section must read as
    /// its type and pass its checks, and no two listeners, MQTT's and every gateway's, bind
    /// one address of one transport.
    pub fn check(&self, config: &Config) -> Result<(), ConfigError> {
        for name in config.gateway.names() {
            if self.names().any(|n| n == name) {
                continue;
            }
            let path = format!("gateway.{name}");
            return Err(if EMQX_GATEWAYS.contains(&name) {
                not_supported(path, "this gateway is not built yet")
            } else {
                let known: Vec<&str> = self.names().collect();
                ConfigError::invalid(
                    path,
                    format!("unknown gateway (known: {})", known.join(", ")),
                )
            });
        }
        let mut binds = config.listeners.binds();
        for slot in &self.slots {
            binds.extend(slot.check(&config.gateway)?);
        }
        check_binds(binds)
    }

    /// Every key the loader accepts, gateways' included, sorted; an EMQX gateway that is
    /// not registered is one key, `gateway.<name>` (refused).
    pub fn accepted_keys(&self) -> Vec<String> {
        let mut keys = junction_config::accepted_keys();
        for slot in &self.slots {
            keys.extend(slot.accepted_keys());
        }
        for name in EMQX_GATEWAYS {
            if !self.names().any(|n| n == *name) {
                keys.push(format!("gateway.{name}"));
            }
        }
        keys.sort();
        keys
    }

    /// The status tables, each gateway's first, then the shared one.
    pub fn key_tables(&self) -> Vec<KeyTable> {
        let mut tables: Vec<KeyTable> = self.slots.iter().map(|s| s.key_status()).collect();
        tables.push(junction_config::KEY_STATUS);
        tables
    }

    /// Load, update or unload every gateway to match `config` (checked with
    /// [`Registry::check`] first). Every gateway is tried; the first error is returned.
    pub async fn apply(&self, env: &GatewayEnv, config: &Config) -> anyhow::Result<()> {
        self.check(config)?;
        let mut first = Ok(());
        for slot in &self.slots {
            let result = slot.apply(env, &config.gateway).await;
            if first.is_ok() {
                first = result;
            }
        }
        first
    }

    /// The context of loaded gateway `name` (clients, counters).
    pub async fn gateway(&self, name: &str) -> Option<Arc<GatewayCtx>> {
        for slot in &self.slots {
            if slot.name() == name {
                return slot.ctx().await;
            }
        }
        None
    }

    /// Every registered gateway's name with the Rust type that implements it.
    pub fn modules(&self) -> Vec<(&'static str, &'static str)> {
        self.slots.iter().map(|s| (s.name(), s.module())).collect()
    }

    /// True if a gateway of this name is registered.
    pub fn has(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }

    /// Section `name` of `sections` with every default filled in, as JSON (`None` if no
    /// such gateway is registered).
    pub fn filled(
        &self,
        name: &str,
        sections: &Gateways,
    ) -> Option<Result<serde_json::Value, ConfigError>> {
        self.slots
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.filled(sections))
    }

    /// Every gateway listener with its bound address.
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        self.slots.iter().flat_map(|s| s.addrs()).collect()
    }

    /// Stop every gateway's listeners and disconnect their clients.
    pub async fn unload_all(&self) {
        for slot in &self.slots {
            slot.unload().await;
        }
    }
}
