//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5.0 §3.4–§3.7, MQTT 3.1.1 §3.4–§3.7), which
//! share one shape, plus the reason-string-and-user-properties block they share with SUBACK
//! and UNSUBACK.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{AckProperties, ProtocolVersion, PubAck};
use crate::wire::{self, not_allowed, opt_str, prop, props, read_properties, PropertySet, Reader};

/// The property set of an ack packet: Reason String and User Property.
pub(crate) const fn ack_property_set(packet: &'static str) -> PropertySet {
    PropertySet {
        packet,
        allowed: prop::mask(&[prop::REASON_STRING, prop::USER_PROPERTY]),
        repeatable: prop::mask(&[prop::USER_PROPERTY]),
    }
}

/// Reads an ack property block.
pub(crate) fn read_ack_properties(
    r: &mut Reader<'_>,
    set: &PropertySet,
) -> Result<AckProperties, DecodeError> {
    let mut properties = AckProperties::default();
    read_properties(r, set, |id, r| {
        match id {
            prop::REASON_STRING => properties.reason_string = Some(r.string()?),
            prop::USER_PROPERTY => properties.user_properties.push(r.string_pair()?),
            _ => return Err(not_allowed(id, set)),
        }
        Ok(())
    })?;
    Ok(properties)
}

impl AckProperties {
    /// True when there is nothing to encode.
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }

    /// Size of the property contents (without the length prefix).
    pub(crate) fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(props::len_field(opt_str(&self.reason_string))?
            + props::len_user(&self.user_properties)?)
    }

    /// Writes the length prefix and the properties.
    pub(crate) fn write(&self, len: usize, buf: &mut BytesMut) {
        wire::put_varint(buf, len);
        props::put_field(buf, prop::REASON_STRING, opt_str(&self.reason_string));
        props::put_user(buf, &self.user_properties);
    }
}

const PUBACK_PROPERTIES: PropertySet = ack_property_set("PUBACK");
const PUBREC_PROPERTIES: PropertySet = ack_property_set("PUBREC");
const PUBREL_PROPERTIES: PropertySet = ack_property_set("PUBREL");
const PUBCOMP_PROPERTIES: PropertySet = ack_property_set("PUBCOMP");

fn property_set(packet_type: u8) -> &'static PropertySet {
    match packet_type {
        wire::PUBREC => &PUBREC_PROPERTIES,
        wire::PUBREL => &PUBREL_PROPERTIES,
        wire::PUBCOMP => &PUBCOMP_PROPERTIES,
        _ => &PUBACK_PROPERTIES,
    }
}

/// Decodes the body of a PUBACK / PUBREC / PUBREL / PUBCOMP (`packet_type` picks the name
/// used in errors). In 5.0 the reason code and properties may be omitted (§3.4.2.1).
pub(crate) fn decode(
    version: ProtocolVersion,
    packet_type: u8,
    body: &Bytes,
) -> Result<PubAck, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let mut ack = PubAck {
        packet_id,
        ..PubAck::default()
    };
    if version.is_v5() && !r.is_empty() {
        ack.reason_code = r.u8()?;
        if !r.is_empty() {
            ack.properties = read_ack_properties(&mut r, property_set(packet_type))?;
        }
    }
    r.finish()?;
    Ok(ack)
}

/// Appends a PUBACK / PUBREC / PUBREL / PUBCOMP, in the shortest form the version allows.
pub(crate) fn encode(
    version: ProtocolVersion,
    packet_type: u8,
    ack: &PubAck,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let flags = if packet_type == wire::PUBREL {
        0b0010
    } else {
        0
    };
    let first = (packet_type << 4) | flags;
    if !version.is_v5() || (ack.reason_code == 0 && ack.properties.is_empty()) {
        wire::put_fixed_header(buf, first, 2)?;
        buf.put_u16(ack.packet_id);
    } else if ack.properties.is_empty() {
        wire::put_fixed_header(buf, first, 3)?;
        buf.put_u16(ack.packet_id);
        buf.put_u8(ack.reason_code);
    } else {
        let props_len = ack.properties.encoded_len()?;
        wire::put_fixed_header(buf, first, 3 + props::block_len(props_len)?)?;
        buf.put_u16(ack.packet_id);
        buf.put_u8(ack.reason_code);
        ack.properties.write(props_len, buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;

    fn ack(packet_id: u16, reason_code: u8) -> PubAck {
        PubAck {
            packet_id,
            reason_code,
            properties: AckProperties::default(),
        }
    }

    #[test]
    fn v3_acks_are_two_bytes_with_pubrel_flags_0010() {
        let cases = [
            (Packet::PubAck(ack(1, 0)), [0x40, 0x02, 0x00, 0x01]),
            (Packet::PubRec(ack(2, 0)), [0x50, 0x02, 0x00, 0x02]),
            (Packet::PubRel(ack(3, 0)), [0x62, 0x02, 0x00, 0x03]),
            (Packet::PubComp(ack(4, 0)), [0x70, 0x02, 0x00, 0x04]),
        ];
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            for (packet, bytes) in &cases {
                assert_eq!(&decode_one(version, bytes).unwrap(), packet);
                assert_eq!(encode_one(version, packet).unwrap(), bytes.to_vec());
            }
        }
    }

    #[test]
    fn v3_ack_encoding_drops_reason_code_and_properties() {
        let mut a = ack(9, 0x80);
        a.properties.reason_string = Some("nope".into());
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &Packet::PubAck(a)).unwrap(),
            vec![0x40, 0x02, 0x00, 0x09]
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x40, 0x03, 0x00, 0x09, 0x00]),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn v5_acks_may_omit_reason_code_and_properties() {
        // Remaining length 2: success, no properties (§3.4.2.1).
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x40, 0x02, 0x00, 0x05]).unwrap(),
            Packet::PubAck(ack(5, 0))
        );
        // Remaining length 3: reason code, no properties.
        let bytes = [0x50, 0x03, 0x00, 0x05, 0x10];
        let packet = decode_one(ProtocolVersion::V5, &bytes).unwrap();
        assert_eq!(packet, Packet::PubRec(ack(5, 0x10)));
        assert_eq!(
            encode_one(ProtocolVersion::V5, &packet).unwrap(),
            bytes.to_vec()
        );
        // Success with no properties encodes to the 2-byte form.
        assert_eq!(
            encode_one(ProtocolVersion::V5, &Packet::PubComp(ack(5, 0))).unwrap(),
            vec![0x70, 0x02, 0x00, 0x05]
        );
    }

    #[test]
    fn v5_ack_with_reason_string_and_user_property() {
        let bytes = [
            0x62, 0x0F, 0x00, 0x07, 0x92, 0x0B, 0x1F, 0x00, 0x01, b'r', 0x26, 0x00, 0x01, b'k',
            0x00, 0x01, b'v',
        ];
        let packet = decode_one(ProtocolVersion::V5, &bytes).unwrap();
        let mut want = ack(7, 0x92);
        want.properties.reason_string = Some("r".into());
        want.properties.user_properties = vec![("k".into(), "v".into())];
        assert_eq!(packet, Packet::PubRel(want));
        assert_eq!(
            encode_one(ProtocolVersion::V5, &packet).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn ack_rules_packet_id_flags_and_properties() {
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x40, 0x02, 0x00, 0x00]),
            Err(DecodeError::ZeroPacketId)
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x60, 0x02, 0x00, 0x01]),
            Err(DecodeError::InvalidFlags {
                packet_type: 6,
                flags: 0
            })
        );
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x42, 0x02, 0x00, 0x01]),
            Err(DecodeError::InvalidFlags {
                packet_type: 4,
                flags: 2
            })
        );
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x11, 0x00, 0x00]
            ),
            Err(DecodeError::PropertyNotAllowed {
                property: 0x11,
                packet: "PUBACK"
            })
        );
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x40, 0x01, 0x00]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn v5_ack_round_trips_with_properties() {
        let mut a = ack(65_535, 0x97);
        a.properties.user_properties = vec![("z".into(), "1".into()), ("a".into(), "2".into())];
        round_trip(ProtocolVersion::V5, &Packet::PubAck(a));
    }
}
