//! Decodes arbitrary bytes with every protocol version and the default limits; every frame
//! that decodes must re-encode and decode back to itself (`junction_codec_stomp::fuzzing`).
//! Run with `scripts/fuzz.sh stomp_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    junction_codec_stomp::fuzzing::roundtrip(data);
});
