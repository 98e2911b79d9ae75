//! Decodes an arbitrary datagram as CoAP (RFC 7252 §3); every message that decodes must
//! re-encode to exactly the input octets (the encoding is canonical) and decode back to
//! itself. A decode error's Reset is due exactly for a Confirmable message. Also feeds the
//! decoded Block options to the block helpers. Run with `cargo fuzz run coap_decode`.
#![no_main]

use bytes::{Bytes, BytesMut};
use junction_codec_coap::{block2_slice, decode, encode, option, Block1Assembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let msg = match decode(Bytes::copy_from_slice(data)) {
        Ok(msg) => msg,
        Err(err) => {
            assert_eq!(err.reset_reply().is_some(), err.is_confirmable());
            return;
        }
    };
    let mut encoded = BytesMut::new();
    encode(&msg, &mut encoded).expect("a decoded message re-encodes");
    assert_eq!(&encoded[..], data, "the encoding is canonical");
    let again = decode(encoded.freeze()).expect("the re-encoding decodes");
    assert_eq!(again, msg);

    // Accessors and helpers must not panic on whatever the datagram carried.
    let _ = msg.uri_path();
    let _ = msg.uri_queries();
    let _ = msg.unknown_critical(option::KNOWN);
    if let Some(Ok(block)) = msg.block2() {
        let _ = block2_slice(&msg.payload, block);
    }
    if let Some(Ok(block)) = msg.block1() {
        let _ = Block1Assembler::new(4096).push(block, &msg.payload);
    }
});
