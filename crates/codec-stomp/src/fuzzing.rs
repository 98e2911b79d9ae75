//! The round-trip property the `stomp_decode` fuzz target checks, kept here so the fuzz
//! target and the crate's tests run the same code.

use crate::{encode, Decoder, Frame, Item, Limits, Version};
use bytes::BytesMut;

/// Decode `data` with every version and the default limits; every frame that decodes must
/// re-encode and decode back to itself. Panics on a violation (that is the point).
pub fn roundtrip(data: &[u8]) {
    for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
        let mut decoder = Decoder::new(version, Limits::default());
        // The re-encoding may carry one header more than the limit (an appended
        // content-length), so it is decoded without limits.
        let mut unlimited = Decoder::new(version, Limits::UNLIMITED);
        let mut buf = BytesMut::from(data);
        while let Ok(Some(item)) = decoder.decode(&mut buf) {
            let Item::Frame(frame) = item else {
                continue;
            };
            let mut encoded = BytesMut::new();
            encode(&frame, version, &mut encoded);
            let again = unlimited
                .decode(&mut encoded)
                .expect("the re-encoding decodes")
                .expect("the re-encoding is complete");
            assert_eq!(again, Item::Frame(as_encoded(frame)));
            assert!(encoded.is_empty(), "the re-encoding has trailing bytes");
        }
    }
}

/// `frame` as the encoder writes it: `content-length` headers after the first dropped, and
/// one appended to a non-empty body that has none.
fn as_encoded(mut frame: Frame) -> Frame {
    let mut has_content_length = false;
    frame.headers.retain(|(name, _)| {
        name != "content-length" || !std::mem::replace(&mut has_content_length, true)
    });
    if !has_content_length && !frame.body.is_empty() {
        let length = frame.body.len().to_string();
        frame.headers.push(("content-length".into(), length.into()));
    }
    frame
}
