//! DISCONNECT (MQTT 5.0 §3.14, MQTT 3.1.1 §3.14).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{Disconnect, DisconnectProperties, ProtocolVersion};
use crate::wire::{self, not_allowed, opt_str, prop, props, read_properties, PropertySet, Reader};

const PROPERTIES: PropertySet = PropertySet {
    packet: "DISCONNECT",
    allowed: prop::mask(&[
        prop::SESSION_EXPIRY_INTERVAL,
        prop::REASON_STRING,
        prop::USER_PROPERTY,
        prop::SERVER_REFERENCE,
    ]),
    repeatable: prop::mask(&[prop::USER_PROPERTY]),
};

/// Decodes a DISCONNECT body: empty in 3.x; in 5.0 the reason code and properties may be
/// omitted (§3.14.2.1, §3.14.2.2.1).
pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<Disconnect, DecodeError> {
    let mut r = Reader::new(body);
    let mut d = Disconnect::default();
    if version.is_v5() && !r.is_empty() {
        d.reason_code = r.u8()?;
        if !r.is_empty() {
            read_properties(&mut r, &PROPERTIES, |id, r| {
                let p = &mut d.properties;
                match id {
                    prop::SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
                    prop::REASON_STRING => p.reason_string = Some(r.string()?),
                    prop::USER_PROPERTY => p.user_properties.push(r.string_pair()?),
                    prop::SERVER_REFERENCE => p.server_reference = Some(r.string()?),
                    _ => return Err(not_allowed(id, &PROPERTIES)),
                }
                Ok(())
            })?;
        }
    }
    r.finish()?;
    Ok(d)
}

impl DisconnectProperties {
    /// True when there is nothing to encode.
    pub fn is_empty(&self) -> bool {
        self.session_expiry_interval.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
            && self.server_reference.is_none()
    }

    fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(props::len_u32(self.session_expiry_interval)
            + props::len_field(opt_str(&self.reason_string))?
            + props::len_user(&self.user_properties)?
            + props::len_field(opt_str(&self.server_reference))?)
    }

    fn write(&self, len: usize, buf: &mut BytesMut) {
        wire::put_varint(buf, len);
        props::put_u32(
            buf,
            prop::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        props::put_field(buf, prop::REASON_STRING, opt_str(&self.reason_string));
        props::put_field(buf, prop::SERVER_REFERENCE, opt_str(&self.server_reference));
        props::put_user(buf, &self.user_properties);
    }
}

/// Appends a DISCONNECT in the shortest form the version allows.
pub(crate) fn encode(
    version: ProtocolVersion,
    d: &Disconnect,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let first = wire::DISCONNECT << 4;
    if !version.is_v5() || (d.reason_code == 0 && d.properties.is_empty()) {
        wire::put_fixed_header(buf, first, 0)?;
    } else if d.properties.is_empty() {
        wire::put_fixed_header(buf, first, 1)?;
        buf.put_u8(d.reason_code);
    } else {
        let props_len = d.properties.encoded_len()?;
        wire::put_fixed_header(buf, first, 1 + props::block_len(props_len)?)?;
        buf.put_u8(d.reason_code);
        d.properties.write(props_len, buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;

    #[test]
    fn v3_disconnect_is_two_bytes() {
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            let bytes = [0xE0, 0x00];
            assert_eq!(
                decode_one(version, &bytes).unwrap(),
                Packet::Disconnect(Disconnect::default())
            );
            let with_reason = Packet::Disconnect(Disconnect {
                reason_code: 0x8B,
                ..Disconnect::default()
            });
            assert_eq!(encode_one(version, &with_reason).unwrap(), bytes.to_vec());
            assert_eq!(
                decode_one(version, &[0xE0, 0x01, 0x00]),
                Err(DecodeError::TrailingBytes(1))
            );
        }
    }

    #[test]
    fn v5_disconnect_short_forms() {
        assert_eq!(
            encode_one(
                ProtocolVersion::V5,
                &Packet::Disconnect(Disconnect::default())
            )
            .unwrap(),
            vec![0xE0, 0x00]
        );
        let bytes = [0xE0, 0x01, 0x04];
        let packet = decode_one(ProtocolVersion::V5, &bytes).unwrap();
        assert_eq!(
            packet,
            Packet::Disconnect(Disconnect {
                reason_code: crate::reason::DISCONNECT_WITH_WILL,
                ..Disconnect::default()
            })
        );
        assert_eq!(
            encode_one(ProtocolVersion::V5, &packet).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn v5_disconnect_with_properties() {
        // Session taken over, session expiry 0, server reference "b".
        let bytes = [
            0xE0, 0x0B, 0x8E, 0x09, 0x11, 0x00, 0x00, 0x00, 0x00, 0x1C, 0x00, 0x01, b'b',
        ];
        let packet = decode_one(ProtocolVersion::V5, &bytes).unwrap();
        let Packet::Disconnect(d) = &packet else {
            panic!("not a disconnect");
        };
        assert_eq!(d.reason_code, crate::reason::SESSION_TAKEN_OVER);
        assert_eq!(d.properties.session_expiry_interval, Some(0));
        assert_eq!(d.properties.server_reference.as_deref(), Some("b"));
        assert_eq!(
            encode_one(ProtocolVersion::V5, &packet).unwrap(),
            bytes.to_vec()
        );
        assert_eq!(
            decode_one(
                ProtocolVersion::V5,
                &[0xE0, 0x05, 0x00, 0x03, 0x24, 0x00, 0x00]
            ),
            Err(DecodeError::PropertyNotAllowed {
                property: 0x24,
                packet: "DISCONNECT"
            })
        );
    }

    #[test]
    fn v5_disconnect_round_trips_every_property() {
        let d = Disconnect {
            reason_code: 0x98,
            properties: DisconnectProperties {
                session_expiry_interval: Some(u32::MAX),
                reason_string: Some("admin".into()),
                user_properties: vec![("x".into(), "".into())],
                server_reference: Some("elsewhere".into()),
            },
        };
        round_trip(ProtocolVersion::V5, &Packet::Disconnect(d));
    }
}
