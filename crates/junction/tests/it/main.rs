//! Integration tests: a real Junction server on port 0, real MQTT clients (rumqttc v4/v5)
//! and a raw-socket client for byte-level edge cases. One binary for the whole crate keeps
//! link time down.

mod access;
mod common;
mod crash;
mod dtls;
mod durable;
mod gateways;
mod hardening;
mod keys;
mod listeners;
mod load;
mod malformed;
mod protocol;
mod routing;
mod sdk;
