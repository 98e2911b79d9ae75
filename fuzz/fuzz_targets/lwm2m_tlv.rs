//! Decodes arbitrary octets as LwM2M TLV, as an element tree and as records under a base
//! path picked by the first octet; whatever decodes must re-encode and decode back equal.
//! Run with `cargo fuzz run lwm2m_tlv`.
#![no_main]

use bytes::{Bytes, BytesMut};
use junction_codec_lwm2m::{decode_tlv, decode_tlv_tree, encode_tlv, encode_tlv_tree, Path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let payload = Bytes::copy_from_slice(payload);

    if let Ok(tree) = decode_tlv_tree(&payload) {
        let mut encoded = BytesMut::new();
        encode_tlv_tree(&tree, &mut encoded).expect("a decoded tree re-encodes");
        let again = decode_tlv_tree(&encoded.freeze()).expect("the re-encoding decodes");
        assert_eq!(again, tree);
    }

    let ids: &[u16] = match selector % 4 {
        0 => &[3],
        1 => &[3, 0],
        2 => &[3, 0, 6],
        _ => &[3, 0, 6, 0],
    };
    let base = Path::new(ids).expect("a valid base path");
    if let Ok(records) = decode_tlv(&payload, &base) {
        let mut encoded = BytesMut::new();
        encode_tlv(&records, &base, &mut encoded).expect("decoded records re-encode");
        let again = decode_tlv(&encoded.freeze(), &base).expect("the re-encoding decodes");
        assert_eq!(again, records);
    }
});
