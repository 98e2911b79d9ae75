//! UNSUBACK (MQTT 5.0 §3.11, MQTT 3.1.1 §3.11). In 3.x it is just a packet identifier.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{ProtocolVersion, UnsubAck};
use crate::puback::{ack_property_set, read_ack_properties};
use crate::wire::{self, props, PropertySet, Reader};

const PROPERTIES: PropertySet = ack_property_set("UNSUBACK");

/// Decodes an UNSUBACK body.
pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<UnsubAck, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let mut ack = UnsubAck {
        packet_id,
        reason_codes: Vec::new(),
        properties: Default::default(),
    };
    if version.is_v5() {
        ack.properties = read_ack_properties(&mut r, &PROPERTIES)?;
        ack.reason_codes = r.rest_slice().to_vec();
    }
    r.finish()?;
    Ok(ack)
}

/// Appends an UNSUBACK (3.x: packet identifier only).
pub(crate) fn encode(
    version: ProtocolVersion,
    u: &UnsubAck,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let first = wire::UNSUBACK << 4;
    if version.is_v5() {
        let props_len = u.properties.encoded_len()?;
        let remaining = 2 + props::block_len(props_len)? + u.reason_codes.len();
        wire::put_fixed_header(buf, first, remaining)?;
        buf.put_u16(u.packet_id);
        u.properties.write(props_len, buf);
        buf.put_slice(&u.reason_codes);
    } else {
        wire::put_fixed_header(buf, first, 2)?;
        buf.put_u16(u.packet_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::AckProperties;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;

    #[test]
    fn v3_unsuback_has_no_payload() {
        let bytes = [0xB0, 0x02, 0x00, 0x0A];
        let want = Packet::UnsubAck(UnsubAck {
            packet_id: 10,
            reason_codes: vec![],
            properties: AckProperties::default(),
        });
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            assert_eq!(decode_one(version, &bytes).unwrap(), want);
            assert_eq!(encode_one(version, &want).unwrap(), bytes.to_vec());
        }
        let with_codes = Packet::UnsubAck(UnsubAck {
            packet_id: 10,
            reason_codes: vec![0x11],
            properties: AckProperties::default(),
        });
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &with_codes).unwrap(),
            bytes.to_vec()
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0xB0, 0x03, 0x00, 0x0A, 0x00]),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn v5_unsuback_with_reason_codes() {
        let bytes = [0xB0, 0x05, 0x00, 0x0A, 0x00, 0x00, 0x11];
        let want = Packet::UnsubAck(UnsubAck {
            packet_id: 10,
            reason_codes: vec![0x00, 0x11],
            properties: AckProperties::default(),
        });
        assert_eq!(decode_one(ProtocolVersion::V5, &bytes).unwrap(), want);
        assert_eq!(
            encode_one(ProtocolVersion::V5, &want).unwrap(),
            bytes.to_vec()
        );
        round_trip(ProtocolVersion::V5, &want);
    }
}
