//! The gateway framework: what every protocol gateway (STOMP, MQTT-SN, CoAP, …) shares.
//!
//! A gateway reaches the broker only through its [`GatewayCtx`]: sessions in the gateway's
//! client-id namespace, mounted publish and subscribe, the registry of connected clients
//! ([`ClientRegistry`]), counters with EMQX's names ([`GatewayMetrics`]) and the
//! `$SYS/brokers/<node>/gateway/<protocol>/clients/…` events.
//!
//! A gateway crate implements [`Gateway`]; the server lists it in its [`Registry`], which
//! checks its config section, loads, updates and unloads it ([`GatewayRunner`]).

pub mod admin;
pub mod call;
pub mod client;
pub mod ctx;
pub mod driver;
pub mod kind;
pub mod listener_opts;
pub mod metrics;
pub mod mountpoint;
pub mod registry;
pub mod runner;

pub use admin::{AdminError, AuthnOp, ChangeStore, GatewayAdmin, GatewayState, Status, Times};
pub use call::{CallError, ClientCall, SubscriptionInfo};
pub use client::{ClientInfo, ClientRegistry, ClientView, ConnStats, SessionFigures};
pub use ctx::{
    Admission, BrokerStats, CommonSettings, Flavour, GatewayCtx, GatewayResources, Refusal,
};
pub use driver::{CloseReason, ConnectRequest, Session};
pub use kind::{BoxFuture, Gateway, Listening};
pub use metrics::GatewayMetrics;
pub use mountpoint::Mountpoint;
pub use registry::Registry;
pub use runner::{common_settings, GatewayEnv, GatewayRunner};
