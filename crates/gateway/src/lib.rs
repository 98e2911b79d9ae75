//! The gateway framework: what every protocol gateway (STOMP, MQTT-SN, CoAP, …) shares.
//!
//! So far it holds the pieces that do not depend on a protocol: mountpoints and their
//! placeholders ([`mountpoint`]) and the per-gateway counters with EMQX's names
//! ([`metrics`]). The gateway context, client registry and connection drivers follow
//! (issue 3).

pub mod metrics;
pub mod mountpoint;
