//! The body of `fuzz/fuzz_targets/stomp_decode.rs`, copied verbatim into [`check`] so the
//! fuzz target's logic is compiled and exercised by `cargo test`: on arbitrary bytes, and on
//! valid frame streams with mutated octets.

use bytes::BytesMut;
use junction_codec_stomp::{encode, Decoder, Frame, Item, Limits, Version};
use proptest::collection::vec;
use proptest::prelude::*;

fn check(data: &[u8]) {
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

/// Valid frames of every version and command, with escapes, CR LF and heart-beats.
const SEED: &[u8] = b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:a\\b\n\n\0\n\
SEND\r\ndestination:/q\\c1\r\ncontent-length:3\r\n\r\na\0b\0\r\n\
MESSAGE\nk\\n:v\\r\\\\\ncontent-length:0\ncontent-length:7\n\n\0\
ERROR\nmessage:x:y\n\nbody\0\n";

/// Frames decoded from `data` before `Ok(None)` or an error.
fn frames_in(data: &[u8], version: Version) -> usize {
    let mut decoder = Decoder::new(version, Limits::default());
    let mut buf = BytesMut::from(data);
    let mut frames = 0;
    while let Ok(Some(item)) = decoder.decode(&mut buf) {
        frames += usize::from(matches!(item, Item::Frame(_)));
    }
    frames
}

#[test]
fn seed_passes_the_fuzz_check() {
    // 1.1 stops at MESSAGE: `\r` is not a 1.1 escape.
    assert_eq!(frames_in(SEED, Version::V1_0), 4);
    assert_eq!(frames_in(SEED, Version::V1_1), 2);
    assert_eq!(frames_in(SEED, Version::V1_2), 4);
    check(SEED);
    for cut in 0..SEED.len() {
        check(&SEED[cut..]);
        check(&SEED[..cut]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_pass_the_fuzz_check(data in vec(any::<u8>(), 0..256)) {
        check(&data);
    }

    #[test]
    fn mutated_frames_pass_the_fuzz_check(
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut data = SEED.to_vec();
        for (index, octet) in mutations {
            let at = index.index(data.len());
            data[at] = octet;
        }
        check(&data);
    }
}
