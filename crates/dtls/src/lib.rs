//! DTLS 1.2 (RFC 6347) for Junction's datagram listeners, on OpenSSL: the server side of
//! the framework's backend-neutral [`junction_gateway::driver::dtls`] traits.
//!
//! A ClientHello without a good cookie is answered statelessly with a HelloVerifyRequest
//! this crate writes itself ([`hello`], [`cookie`]), never larger than the ClientHello; no
//! OpenSSL state exists for an address until it proves it receives what is sent to it.
//! The session for a proven address is then brought to where a server that had kept state
//! would be, by replaying the client's first ClientHello (rebuilt from its second) and
//! then the second ([`server`]).

pub mod cookie;
pub mod hello;
pub mod listener;
pub mod server;

pub use listener::{listener_endpoint, start_datagram};
pub use server::{ConfigError, OpensslEndpoint, ServerConfig, DEFAULT_CIPHERS};
