//! Decodes arbitrary octets as SenML JSON and SenML CBOR; neither may panic, and a pack
//! that decodes from CBOR must re-encode and decode back to equal records. Run with
//! `cargo fuzz run lwm2m_senml`.
#![no_main]

use junction_codec_lwm2m::{decode_senml_cbor, decode_senml_json, encode_senml_cbor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_senml_json(data);
    let Ok(records) = decode_senml_cbor(data) else {
        return;
    };
    let encoded = encode_senml_cbor(&records).expect("decoded records re-encode");
    let again = decode_senml_cbor(&encoded).expect("the re-encoding decodes");
    assert_eq!(again, records);
});
