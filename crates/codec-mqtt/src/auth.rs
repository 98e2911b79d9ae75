//! AUTH (MQTT 5.0 §3.15). It does not exist in 3.x, where type 15 is reserved.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::{Auth, AuthProperties, ProtocolVersion};
use crate::wire::{
    self, not_allowed, opt_bin, opt_str, prop, props, read_properties, PropertySet, Reader,
};

const PROPERTIES: PropertySet = PropertySet {
    packet: "AUTH",
    allowed: prop::mask(&[
        prop::AUTHENTICATION_METHOD,
        prop::AUTHENTICATION_DATA,
        prop::REASON_STRING,
        prop::USER_PROPERTY,
    ]),
    repeatable: prop::mask(&[prop::USER_PROPERTY]),
};

/// Decodes an AUTH body. An empty body means success without properties (§3.15.2.1).
pub(crate) fn decode(version: ProtocolVersion, body: &Bytes) -> Result<Auth, DecodeError> {
    if !version.is_v5() {
        return Err(DecodeError::AuthInV3);
    }
    let mut r = Reader::new(body);
    let mut auth = Auth::default();
    if !r.is_empty() {
        auth.reason_code = r.u8()?;
        if !r.is_empty() {
            read_properties(&mut r, &PROPERTIES, |id, r| {
                let p = &mut auth.properties;
                match id {
                    prop::AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
                    prop::AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
                    prop::REASON_STRING => p.reason_string = Some(r.string()?),
                    prop::USER_PROPERTY => p.user_properties.push(r.string_pair()?),
                    _ => return Err(not_allowed(id, &PROPERTIES)),
                }
                Ok(())
            })?;
        }
    }
    r.finish()?;
    Ok(auth)
}

impl AuthProperties {
    /// True when there is nothing to encode.
    pub fn is_empty(&self) -> bool {
        self.authentication_method.is_none()
            && self.authentication_data.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
    }

    fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(props::len_field(opt_str(&self.authentication_method))?
            + props::len_field(opt_bin(&self.authentication_data))?
            + props::len_field(opt_str(&self.reason_string))?
            + props::len_user(&self.user_properties)?)
    }

    fn write(&self, len: usize, buf: &mut BytesMut) {
        wire::put_varint(buf, len);
        props::put_field(
            buf,
            prop::AUTHENTICATION_METHOD,
            opt_str(&self.authentication_method),
        );
        props::put_field(
            buf,
            prop::AUTHENTICATION_DATA,
            opt_bin(&self.authentication_data),
        );
        props::put_field(buf, prop::REASON_STRING, opt_str(&self.reason_string));
        props::put_user(buf, &self.user_properties);
    }
}

/// Appends an AUTH (5.0 only): empty body for success without properties, otherwise the
/// reason code and a property block.
pub(crate) fn encode(
    version: ProtocolVersion,
    a: &Auth,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Err(EncodeError::AuthInV3);
    }
    let first = wire::AUTH << 4;
    if a.reason_code == 0 && a.properties.is_empty() {
        wire::put_fixed_header(buf, first, 0)?;
    } else {
        let props_len = a.properties.encoded_len()?;
        wire::put_fixed_header(buf, first, 1 + props::block_len(props_len)?)?;
        buf.put_u8(a.reason_code);
        a.properties.write(props_len, buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{decode_one, encode_one, round_trip};
    use crate::Packet;

    #[test]
    fn v5_auth_continue_with_method_and_data() {
        let bytes = [
            0xF0, 0x0E, 0x18, 0x0C, 0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', 0x16, 0x00,
            0x01, 0x2A,
        ];
        let packet = decode_one(ProtocolVersion::V5, &bytes).unwrap();
        let want = Auth {
            reason_code: crate::reason::CONTINUE_AUTHENTICATION,
            properties: AuthProperties {
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(&[0x2A])),
                ..AuthProperties::default()
            },
        };
        assert_eq!(packet, Packet::Auth(want));
        assert_eq!(
            encode_one(ProtocolVersion::V5, &packet).unwrap(),
            bytes.to_vec()
        );
    }

    #[test]
    fn v5_auth_success_may_be_empty() {
        let bytes = [0xF0, 0x00];
        let packet = decode_one(ProtocolVersion::V5, &bytes).unwrap();
        assert_eq!(packet, Packet::Auth(Auth::default()));
        assert_eq!(
            encode_one(ProtocolVersion::V5, &packet).unwrap(),
            bytes.to_vec()
        );
        round_trip(
            ProtocolVersion::V5,
            &Packet::Auth(Auth {
                reason_code: crate::reason::REAUTHENTICATE,
                properties: AuthProperties {
                    reason_string: Some("again".into()),
                    user_properties: vec![("k".into(), "v".into())],
                    ..AuthProperties::default()
                },
            }),
        );
    }

    #[test]
    fn auth_does_not_exist_in_v3() {
        for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1] {
            assert_eq!(
                decode_one(version, &[0xF0, 0x00]),
                Err(DecodeError::AuthInV3)
            );
            assert_eq!(
                encode_one(version, &Packet::Auth(Auth::default())),
                Err(EncodeError::AuthInV3)
            );
        }
    }
}
