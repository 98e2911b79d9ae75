//! Gateway discovery: ADVERTISE (§5.4.1), SEARCHGW (§5.4.2) and GWINFO (§5.4.3).
//!
//! ```text
//! ADVERTISE  Length MsgType GwId(1) Duration(2)     5 octets
//! SEARCHGW   Length MsgType Radius(1)               3 octets
//! GWINFO     Length MsgType GwId(1) GwAdd(n)        3+n octets
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::message::Message;
use crate::msg_type::{ADVERTISE, GWINFO, SEARCHGW};
use crate::wire::Reader;

/// ADVERTISE variable part: GwId and Duration.
const ADVERTISE_LEN: usize = 3;
/// SEARCHGW variable part: Radius.
const SEARCHGW_LEN: usize = 1;

/// Decodes an ADVERTISE variable part.
pub(crate) fn decode_advertise(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::exact(ADVERTISE, body, ADVERTISE_LEN)?;
    Ok(Message::Advertise {
        gw_id: r.u8()?,
        duration: r.u16()?,
    })
}

/// Writes an ADVERTISE variable part.
pub(crate) fn put_advertise(buf: &mut BytesMut, gw_id: u8, duration: u16) {
    buf.put_u8(gw_id);
    buf.put_u16(duration);
}

/// Decodes a SEARCHGW variable part.
pub(crate) fn decode_searchgw(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::exact(SEARCHGW, body, SEARCHGW_LEN)?;
    Ok(Message::SearchGw { radius: r.u8()? })
}

/// Decodes a GWINFO variable part: GwId, then GwAdd to the end (empty from a gateway).
pub(crate) fn decode_gwinfo(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(GWINFO, body, 1, None)?;
    Ok(Message::GwInfo {
        gw_id: r.u8()?,
        gw_add: r.rest(),
    })
}

/// Writes a GWINFO variable part.
pub(crate) fn put_gwinfo(buf: &mut BytesMut, gw_id: u8, gw_add: &Bytes) {
    buf.put_u8(gw_id);
    buf.put_slice(gw_add);
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;
    use bytes::Bytes;

    #[test]
    fn advertise_matches_section_5_4_1() {
        let msg = Message::Advertise {
            gw_id: 7,
            duration: 900,
        };
        assert_wire(&msg, &[0x05, 0x00, 0x07, 0x03, 0x84]);
        assert_eq!(
            decode_slice(&[0x04, 0x00, 0x07, 0x03]),
            Err(DecodeError::BodyTooShort {
                msg_type: 0x00,
                len: 2,
                min: 3
            })
        );
        assert_eq!(
            decode_slice(&[0x06, 0x00, 0x07, 0x03, 0x84, 0x00]),
            Err(DecodeError::BodyTooLong {
                msg_type: 0x00,
                len: 4,
                max: 3
            })
        );
    }

    #[test]
    fn searchgw_matches_section_5_4_2() {
        assert_wire(&Message::SearchGw { radius: 3 }, &[0x03, 0x01, 0x03]);
        assert!(matches!(
            decode_slice(&[0x02, 0x01]),
            Err(DecodeError::BodyTooShort { .. })
        ));
    }

    #[test]
    fn gwinfo_from_a_gateway_has_no_address() {
        // EMQX answers SEARCHGW with <<3, 0x02, GwId>>.
        let msg = Message::GwInfo {
            gw_id: 1,
            gw_add: Bytes::new(),
        };
        assert_wire(&msg, &[0x03, 0x02, 0x01]);
    }

    #[test]
    fn gwinfo_from_a_client_carries_the_gateway_address() {
        let msg = Message::GwInfo {
            gw_id: 1,
            gw_add: Bytes::from_static(&[127, 0, 0, 1, 0x07, 0x5C]),
        };
        assert_wire(&msg, &[0x09, 0x02, 0x01, 127, 0, 0, 1, 0x07, 0x5C]);
        assert!(matches!(
            decode_slice(&[0x02, 0x02]),
            Err(DecodeError::BodyTooShort { min: 1, .. })
        ));
    }
}
