//! What a gateway crate implements to be registered ([`Gateway`]), and what its listeners
//! look like to the framework ([`Listening`]).

use crate::ctx::{CommonSettings, GatewayCtx};
use junction_config::authn::AuthnConfig;
use junction_config::{ConfigError, GatewayListener, GatewayListeners, KeyTable, ListenerType};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A started listener of any transport.
pub trait Listening: Send + Sync {
    /// Listener id, `<gateway>:<type>:<name>`.
    fn id(&self) -> &str;
    /// The bound address.
    fn local_addr(&self) -> SocketAddr;
    /// Stop accepting and release the address.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl Listening for junction_transport::ListenerHandle {
    fn id(&self) -> &str {
        &self.id
    }
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(junction_transport::ListenerHandle::shutdown(*self))
    }
}

/// One protocol gateway, as its crate declares it. The server holds a list of these
/// ([`crate::Registry`]); loading, run-time updates, unloading, config checks, the key list
/// and shutdown are the framework's, generic over this trait.
pub trait Gateway: Send + Sync + 'static {
    /// The typed `gateway.<name>` section: `#[serde(default, deny_unknown_fields)]`, its
    /// `Default` being the gateway as `junction start` runs it.
    type Config: DeserializeOwned
        + serde::Serialize
        + Clone
        + PartialEq
        + Send
        + Sync
        + std::fmt::Debug
        + 'static;
    /// Config key (`gateway.<NAME>`), client-id namespace and listener id prefix.
    const NAME: &'static str;
    /// Protocol name in ClientInfo, `$SYS` topics and chain names (`<PROTOCOL>:global`).
    const PROTOCOL: &'static str;
    /// Its frame types, EMQX's `<type>` of `packets.<type>.received|sent` (the `NAMES` of
    /// its [`frame_types!`](crate::frame_types) module).
    const FRAMES: &'static [&'static str];
    /// The listener types it serves; others are refused at load.
    const LISTENER_TYPES: &'static [ListenerType];
    /// What happens to each of its keys (`gateway.<NAME>.…`), for the key list: the keys
    /// its section type adds; the shared listener keys are in `junction_config::KEY_STATUS`.
    const KEY_STATUS: KeyTable;

    /// `enable`.
    fn enabled(config: &Self::Config) -> bool;
    /// `listeners`.
    fn listeners(config: &Self::Config) -> &GatewayListeners;
    /// `authentication`: the gateway's global authenticator.
    fn authentication(config: &Self::Config) -> Option<&AuthnConfig>;
    /// The common keys (mountpoint, idle timeout, stats, identity templates).
    fn common(config: &Self::Config) -> CommonSettings;
    /// Checks beyond what the type says (ranges, combinations), with the key path.
    fn validate(_config: &Self::Config) -> Result<(), ConfigError> {
        Ok(())
    }
    /// True if a change between two configs needs every listener restarted (settings the
    /// listeners captured when they started).
    fn restart_listeners(old: &Self::Config, new: &Self::Config) -> bool;
    /// Start one listener, `<NAME>:<kind>:<name>`.
    fn start(
        ctx: Arc<GatewayCtx>,
        config: &Self::Config,
        kind: ListenerType,
        name: &str,
        listener: &GatewayListener,
    ) -> impl Future<Output = anyhow::Result<Box<dyn Listening>>> + Send;
}
