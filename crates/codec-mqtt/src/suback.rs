//! SUBACK (MQTT 5.0 §3.9, MQTT 3.1.1 §3.9).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{ProtocolVersion, SubAck};
use crate::puback::{ack_property_set, read_ack_properties};
use crate::wire::{self, props, PropertySet, Reader};

const PROPERTIES: PropertySet = ack_property_set("SUBACK");

/// The MQTT 3.x SUBACK failure return code.
const V3_FAILURE: u8 = 0x80;

/// True for the return codes MQTT 3.x defines: granted QoS 0, 1, 2 or failure 0x80.
fn is_v3_return_code(code: u8) -> bool {
    matches!(code, 0 | 1 | 2 | V3_FAILURE)
}

/// Decodes a SUBACK body.
pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<SubAck, DecodeError> {
    let mut r = Reader::new(body);
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        read_ack_properties(&mut r, &PROPERTIES)?
    } else {
        Default::default()
    };
    let codes = r.rest_slice();
    if !version.is_v5() {
        if let Some(&bad) = codes.iter().find(|&&c| !is_v3_return_code(c)) {
            return Err(DecodeError::InvalidReasonCode(bad));
        }
    }
    Ok(SubAck {
        packet_id,
        reason_codes: codes.to_vec(),
        properties,
    })
}

/// Appends a SUBACK. For 3.x the properties are dropped and every 5.0 failure reason code
/// (0x80 and above) becomes the 3.x failure code 0x80.
pub(crate) fn encode(
    version: ProtocolVersion,
    s: &SubAck,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let first = wire::SUBACK << 4;
    if version.is_v5() {
        let props_len = s.properties.encoded_len()?;
        let remaining = 2 + props::block_len(props_len)? + s.reason_codes.len();
        wire::put_fixed_header(buf, first, remaining)?;
        buf.put_u16(s.packet_id);
        s.properties.write(props_len, buf);
        buf.put_slice(&s.reason_codes);
    } else {
        wire::put_fixed_header(buf, first, 2 + s.reason_codes.len())?;
        buf.put_u16(s.packet_id);
        for &code in &s.reason_codes {
            buf.put_u8(if code >= V3_FAILURE { V3_FAILURE } else { code });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::AckProperties;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;

    fn suback(codes: &[u8]) -> SubAck {
        SubAck {
            packet_id: 10,
            reason_codes: codes.to_vec(),
            properties: AckProperties::default(),
        }
    }

    #[test]
    fn v3_suback_with_all_return_codes() {
        // MQTT 3.1.1 §3.9.3 example: success QoS 0, QoS 2, failure.
        let bytes = [0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80];
        let want = Packet::SubAck(suback(&[0x00, 0x02, 0x80]));
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            assert_eq!(decode_one(version, &bytes).unwrap(), want);
            assert_eq!(encode_one(version, &want).unwrap(), bytes.to_vec());
        }
    }

    #[test]
    fn v3_suback_rejects_codes_outside_0_1_2_0x80_and_maps_v5_failures() {
        assert_eq!(
            decode_one(ProtocolVersion::V3_1_1, &[0x90, 0x03, 0x00, 0x0A, 0x87]),
            Err(DecodeError::InvalidReasonCode(0x87))
        );
        let mut s = suback(&[0x01, 0x87, 0xA2]);
        s.properties.reason_string = Some("dropped".into());
        assert_eq!(
            encode_one(ProtocolVersion::V3_1_1, &Packet::SubAck(s)).unwrap(),
            vec![0x90, 0x05, 0x00, 0x0A, 0x01, 0x80, 0x80]
        );
    }

    #[test]
    fn v5_suback_with_properties() {
        let bytes = [
            0x90, 0x09, 0x00, 0x0A, 0x04, 0x1F, 0x00, 0x01, b'r', 0x01, 0x8F,
        ];
        let packet = decode_one(ProtocolVersion::V5, &bytes).unwrap();
        let mut want = suback(&[0x01, 0x8F]);
        want.properties.reason_string = Some("r".into());
        assert_eq!(packet, Packet::SubAck(want));
        assert_eq!(
            encode_one(ProtocolVersion::V5, &packet).unwrap(),
            bytes.to_vec()
        );
        assert_eq!(
            decode_one(ProtocolVersion::V5, &[0x90, 0x03, 0x00, 0x0A, 0x05]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn v5_suback_round_trips() {
        let mut s = suback(&[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E]);
        s.properties.user_properties = vec![("a".into(), "b".into())];
        round_trip(ProtocolVersion::V5, &Packet::SubAck(s));
    }
}
