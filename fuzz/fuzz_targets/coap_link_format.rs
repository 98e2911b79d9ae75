//! Parses arbitrary text as a CoRE link-format document (RFC 6690 §2); every document that
//! parses must serialize and parse back to the same links. Run with
//! `cargo fuzz run coap_link_format`.
#![no_main]

use junction_codec_coap::link_format::{parse, serialize, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(links) = parse(text, Limits::default()) else {
        return;
    };
    let written = serialize(&links).expect("parsed links serialize");
    assert_eq!(parse(&written, Limits::default()), Ok(links));
});
