//! UNSUBSCRIBE (MQTT 5.0 §3.10, MQTT 3.1.1 §3.10).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{ProtocolVersion, Unsubscribe};
use crate::wire::{
    self, field_len, not_allowed, prop, props, put_field, read_properties, PropertySet, Reader,
};

const PROPERTIES: PropertySet = PropertySet {
    packet: "UNSUBSCRIBE",
    allowed: prop::mask(&[prop::USER_PROPERTY]),
    repeatable: prop::mask(&[prop::USER_PROPERTY]),
};

/// Decodes an UNSUBSCRIBE body.
pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<Unsubscribe, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let mut user_properties = Vec::new();
    if version.is_v5() {
        read_properties(&mut r, &PROPERTIES, |id, r| {
            match id {
                prop::USER_PROPERTY => user_properties.push(r.string_pair()?),
                _ => return Err(not_allowed(id, &PROPERTIES)),
            }
            Ok(())
        })?;
    }
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        user_properties,
    })
}

/// Appends an UNSUBSCRIBE for `version`.
pub(crate) fn encode(
    version: ProtocolVersion,
    u: &Unsubscribe,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mut remaining = 2;
    let mut props_len = 0;
    if version.is_v5() {
        props_len = props::len_user(&u.user_properties)?;
        remaining += props::block_len(props_len)?;
    }
    for filter in &u.filters {
        remaining += field_len(filter.as_bytes())?;
    }
    wire::put_fixed_header(buf, (wire::UNSUBSCRIBE << 4) | 0b0010, remaining)?;
    buf.put_u16(u.packet_id);
    if version.is_v5() {
        wire::put_varint(buf, props_len);
        props::put_user(buf, &u.user_properties);
    }
    for filter in &u.filters {
        put_field(buf, filter.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;

    #[test]
    fn v3_unsubscribe_with_two_filters() {
        // MQTT 3.1.1 §3.10.3 example: "a/b", "c/d".
        let bytes = [
            0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd',
        ];
        let want = Packet::Unsubscribe(Unsubscribe {
            packet_id: 10,
            filters: vec!["a/b".into(), "c/d".into()],
            user_properties: vec![],
        });
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            assert_eq!(decode_one(version, &bytes).unwrap(), want);
            assert_eq!(encode_one(version, &want).unwrap(), bytes.to_vec());
        }
    }

    #[test]
    fn v5_unsubscribe_with_user_property() {
        let bytes = [
            0xA2, 0x0D, 0x00, 0x0B, 0x07, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', 0x00, 0x01,
            b'#',
        ];
        let want = Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            filters: vec!["#".into()],
            user_properties: vec![("k".into(), "v".into())],
        });
        assert_eq!(decode_one(ProtocolVersion::V5, &bytes).unwrap(), want);
        assert_eq!(
            encode_one(ProtocolVersion::V5, &want).unwrap(),
            bytes.to_vec()
        );
        round_trip(ProtocolVersion::V5, &want);
    }

    #[test]
    fn unsubscribe_needs_flags_0010_and_a_filter() {
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0xA2, 0x02, 0x00, 0x01]),
            Err(DecodeError::NoUnsubscribeFilters)
        );
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0xA0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a']
            ),
            Err(DecodeError::InvalidFlags {
                packet_type: 10,
                flags: 0
            })
        );
        // Reason String is not an UNSUBSCRIBE property.
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0xA2, 0x0A, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, b'r', 0x00, 0x01, b'a']
            ),
            Err(DecodeError::PropertyNotAllowed {
                property: 0x1F,
                packet: "UNSUBSCRIBE"
            })
        );
    }
}
