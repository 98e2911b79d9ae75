//! Decodes an arbitrary datagram as MQTT-SN 1.2; every message that decodes must re-encode,
//! decode back to itself, and re-encode to the same octets. Run with
//! `cargo fuzz run mqttsn_decode`.
#![no_main]

use bytes::{Bytes, BytesMut};
use junction_codec_mqttsn::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut encoded = BytesMut::new();
    encode(&msg, &mut encoded).expect("a decoded message re-encodes");
    let again = decode(encoded.clone().freeze()).expect("the re-encoding decodes");
    assert_eq!(again, msg);
    let mut re_encoded = BytesMut::new();
    encode(&again, &mut re_encoded).expect("the message re-encodes again");
    assert_eq!(re_encoded, encoded, "the encoding is canonical");
});
