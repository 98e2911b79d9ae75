//! Decodes arbitrary bytes with every protocol version; every packet that decodes must
//! re-encode and decode back to itself. Run with `cargo fuzz run mqtt_decode`.
#![no_main]

use bytes::BytesMut;
use junction_codec_mqtt::{Codec, ProtocolVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let codec = Codec::new(version, 1 << 20);
        // The re-encoding may be a byte longer (e.g. a 5.0 CONNACK given without its
        // property length), so the second decode has no size limit.
        let unlimited = Codec::new(version, u32::MAX);
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = codec.decode(&mut buf) {
            let mut encoded = BytesMut::new();
            codec
                .encode(&packet, &mut encoded)
                .expect("a decoded packet re-encodes");
            let again = unlimited
                .decode(&mut encoded)
                .expect("the re-encoding decodes")
                .expect("the re-encoding is complete");
            assert_eq!(again, packet);
            assert!(encoded.is_empty(), "the re-encoding has trailing bytes");
        }
    }
});
