//! Junction's LwM2M gateway (reference §5.4): OMA LwM2M devices register over UDP or
//! DTLS (`POST /rd?ep=…`), and applications manage them over MQTT: commands published
//! on the device's command topic (`lwm2m/{ep}/dn/#` by default) become CoAP requests, and
//! the answers, observe notifications and registration events come back as EMQX's JSON
//! on the translator topics.
//!
//! It is a protocol of the framework's datagram driver on the CoAP message layer of
//! `junction-codec-coap`; payloads (TLV, text, opaque, OMA JSON, SenML JSON and CBOR) are
//! `junction-codec-lwm2m`'s, typed by the object definitions ([`objects`]).
//!
//! Where EMQX's code differs from its documentation (reference §7.2), Junction does what
//! is documented: `lifetime_min` and `lifetime_max` bound the lifetime a device asks
//! for, `update_msg_publish_condition` is honoured, and a queued command whose MQTT
//! message expired is dropped rather than sent late.

mod channel;
pub mod command;
pub mod config;
mod gateway;
pub mod objects;
mod opening;
mod protocol;
pub mod registration;

pub use config::Lwm2mConfig;
pub use gateway::Lwm2m;

junction_gateway::frame_types! {
    /// LwM2M frames as EMQX counts them: every message is `coap`.
    pub mod frame {
        COAP => "coap",
    }
}
