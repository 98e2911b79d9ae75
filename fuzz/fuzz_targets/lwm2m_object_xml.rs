//! Parses arbitrary UTF-8 as OMA object definition XML; the reader must never panic, and
//! whatever parses must survive the management API's JSON round trip unchanged.
//! Run with `cargo fuzz run lwm2m_object_xml`.
#![no_main]

use junction_codec_lwm2m::{parse_object_xml, ObjectDef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(defs) = parse_object_xml(text) {
        for def in defs {
            let again = ObjectDef::from_json(&def.to_json()).expect("a parsed definition re-reads");
            assert_eq!(again, def);
        }
    }
});
