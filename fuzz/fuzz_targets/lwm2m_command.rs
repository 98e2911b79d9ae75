//! What an LwM2M gateway reads from the outside besides payloads: a command published
//! on a device's command topic (any octets) and a REGISTER's query and object list.
//! Nothing may panic; a command that parses builds a request that encodes. Run with
//! `cargo fuzz run lwm2m_command`.
#![no_main]

use bytes::BytesMut;
use junction_codec_lwm2m::ObjectRegistry;
use junction_gw_lwm2m::command;
use junction_gw_lwm2m::registration::{Lifetimes, Registration};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn registry() -> &'static ObjectRegistry {
    static REGISTRY: OnceLock<ObjectRegistry> = OnceLock::new();
    REGISTRY.get_or_init(ObjectRegistry::with_core)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(cmd)) = command::parse(data, registry(), None) {
        let mut buf = BytesMut::new();
        let _ = junction_codec_coap::encode(&cmd.message("/alt"), &mut buf);
    }
    // The same octets as a query (split on '&') and a link-format object list.
    let (query, payload) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let query = String::from_utf8_lossy(query);
    let pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    let limits = Lifetimes { min: 1, max: 86400 };
    if let Ok(mut reg) = Registration::register(&pairs, payload, limits) {
        let _ = reg.update(&pairs, payload, limits);
        let _ = reg.event("update");
    }
});
