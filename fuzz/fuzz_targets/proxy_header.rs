//! Parses arbitrary bytes as a PROXY protocol v1/v2 header: never a panic, a header's
//! length never past the input, and a whole header still parses the same with trailing
//! bytes after it. Run with `scripts/fuzz.sh proxy_header`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use junction_transport::proxy::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((header, len))) = parse(data) {
        assert!(len <= data.len());
        let mut longer = data[..len].to_vec();
        longer.extend_from_slice(b"\x10\x0c\x00\x04MQTT");
        assert_eq!(parse(&longer), Ok(Some((header, len))));
    }
});
