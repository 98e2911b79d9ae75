//! The fuzz target's property (`junction_codec_stomp::fuzzing::roundtrip`) exercised by
//! `cargo test`: on arbitrary bytes, and on valid frame streams with mutated octets.

use bytes::BytesMut;
use junction_codec_stomp::{Decoder, Item, Limits, Version};
use proptest::collection::vec;
use proptest::prelude::*;

fn check(data: &[u8]) {
    junction_codec_stomp::fuzzing::roundtrip(data);
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
