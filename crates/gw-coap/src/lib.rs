//! Junction's CoAP gateway (reference §5.3): constrained devices publish with
//! `POST /ps/{topic}` and subscribe with `GET /ps/{filter}` and Observe, over UDP or DTLS,
//! into the one MQTT publish/subscribe space. It is a protocol of the framework's
//! datagram driver: every peer address is a client of its own (connectionless mode, the
//! default) or opens a connection with `POST /mqtt/connection` and names it with its
//! client id and token in every request (`connection_required = true`), authenticated by
//! the gateway's chain.
//!
//! The RFC 7252 message layer (deduplication, piggy-backed responses, confirmable
//! notifications retransmitted with the RFC's back-off) is `junction-codec-coap`'s
//! sans-IO `Endpoint`; the channel here is sans-IO too and is tested with a fake clock.
//!
//! Where EMQX's code differs from its documentation (reference §7.2), Junction does what
//! is documented: `notify_type` is honoured (EMQX reads a misspelt key and always sends
//! NON), confirmable messages back off as RFC 7252 §4.2 says (EMQX retransmits back to
//! back), the `expiry` query is applied, and a request from an address that has not
//! proved who it is gets no way around authentication: where the listener has an
//! authenticator, connectionless requests are refused (EMQX serves them unauthenticated).

mod channel;
pub mod config;
mod gateway;
mod opening;
mod protocol;
pub mod request;
pub mod wire;

pub use config::CoapConfig;
pub use gateway::Coap;

junction_gateway::frame_types! {
    /// CoAP frames as EMQX counts them: every message is `coap`.
    pub mod frame {
        COAP => "coap",
    }
}
