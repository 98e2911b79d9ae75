//! Wire primitives shared by every packet: the fixed header, Variable Byte Integers,
//! two-byte-length strings and binary data, and the MQTT 5.0 property block.
//!
//! Reading goes through [`Reader`], a bounds-checked cursor over the frozen packet body that
//! hands out zero-copy `Bytes` slices; nothing is allocated on the strength of a length field
//! before the bytes it announces are known to be there.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use junction_types::UserProperty;

use crate::error::{DecodeError, EncodeError};

/// Largest value a Variable Byte Integer can carry (MQTT 5.0 §1.5.5).
pub const MAX_VARINT: usize = 268_435_455;
/// Largest UTF-8 string / binary data field (two-byte length prefix).
pub const MAX_STRING: usize = u16::MAX as usize;

/// CONNECT packet type.
pub const CONNECT: u8 = 1;
/// CONNACK packet type.
pub const CONNACK: u8 = 2;
/// PUBLISH packet type.
pub const PUBLISH: u8 = 3;
/// PUBACK packet type.
pub const PUBACK: u8 = 4;
/// PUBREC packet type.
pub const PUBREC: u8 = 5;
/// PUBREL packet type.
pub const PUBREL: u8 = 6;
/// PUBCOMP packet type.
pub const PUBCOMP: u8 = 7;
/// SUBSCRIBE packet type.
pub const SUBSCRIBE: u8 = 8;
/// SUBACK packet type.
pub const SUBACK: u8 = 9;
/// UNSUBSCRIBE packet type.
pub const UNSUBSCRIBE: u8 = 10;
/// UNSUBACK packet type.
pub const UNSUBACK: u8 = 11;
/// PINGREQ packet type.
pub const PINGREQ: u8 = 12;
/// PINGRESP packet type.
pub const PINGRESP: u8 = 13;
/// DISCONNECT packet type.
pub const DISCONNECT: u8 = 14;
/// AUTH packet type (5.0).
pub const AUTH: u8 = 15;

/// The fixed header of a packet whose first byte and Remaining Length have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Packet type (upper nibble of byte 1).
    pub packet_type: u8,
    /// Flags (lower nibble of byte 1).
    pub flags: u8,
    /// Bytes taken by the fixed header itself (2 to 5).
    pub header_len: usize,
    /// The Remaining Length.
    pub remaining_len: usize,
}

impl FixedHeader {
    /// Total size of the packet on the wire.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len
    }

    /// Parses the Remaining Length after the first byte; `Ok(None)` if it has not fully
    /// arrived yet.
    pub fn parse(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let mut value = 0usize;
        for i in 0..4 {
            let Some(&byte) = buf.get(1 + i) else {
                return Ok(None);
            };
            value |= usize::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(Some(FixedHeader {
                    packet_type: first >> 4,
                    flags: first & 0x0F,
                    header_len: 2 + i,
                    remaining_len: value,
                }));
            }
        }
        Err(DecodeError::MalformedRemainingLength)
    }
}

/// Number of bytes the Variable Byte Integer encoding of `value` takes.
#[inline]
pub fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `value` (at most [`MAX_VARINT`], checked by the caller) as a Variable Byte Integer.
#[inline]
pub fn put_varint(buf: &mut BytesMut, mut value: usize) {
    debug_assert!(value <= MAX_VARINT);
    loop {
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Appends a fixed header for a body of `remaining` bytes, after reserving room for the
/// whole packet once.
#[inline]
pub fn put_fixed_header(
    buf: &mut BytesMut,
    first_byte: u8,
    remaining: usize,
) -> Result<(), EncodeError> {
    if remaining > MAX_VARINT {
        return Err(EncodeError::PacketTooLarge(remaining));
    }
    buf.reserve(1 + varint_len(remaining) + remaining);
    buf.put_u8(first_byte);
    put_varint(buf, remaining);
    Ok(())
}

/// Encoded size of a two-byte-length string or binary field.
#[inline]
pub fn field_len(bytes: &[u8]) -> Result<usize, EncodeError> {
    if bytes.len() > MAX_STRING {
        return Err(EncodeError::StringTooLong(bytes.len()));
    }
    Ok(2 + bytes.len())
}

/// Appends a two-byte-length string or binary field (length checked by [`field_len`]).
#[inline]
pub fn put_field(buf: &mut BytesMut, bytes: &[u8]) {
    debug_assert!(bytes.len() <= MAX_STRING);
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}

/// A bounds-checked cursor over (part of) a packet body.
pub struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over all of `buf`.
    pub fn new(buf: &'a Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    /// Bytes left to read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// True if nothing is left.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Errors with [`DecodeError::TrailingBytes`] unless everything was read.
    #[inline]
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    #[inline]
    fn take_slice(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let buf: &'a Bytes = self.buf;
        let slice = &buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take_slice(1)?[0])
    }

    /// A big-endian two-byte integer.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.take_slice(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    /// A big-endian four-byte integer.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let s = self.take_slice(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A Variable Byte Integer (at most 4 bytes).
    pub fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedRemainingLength)
    }

    /// A non-zero packet identifier [MQTT-2.2.1-3].
    #[inline]
    pub fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId),
            id => Ok(id),
        }
    }

    /// `n` bytes as a zero-copy slice.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// Everything left, as a zero-copy slice.
    #[inline]
    pub fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos..self.end);
        self.pos = self.end;
        out
    }

    /// Everything left, as a byte slice (for reason code lists).
    #[inline]
    pub fn rest_slice(&mut self) -> &'a [u8] {
        let buf: &'a Bytes = self.buf;
        let out = &buf[self.pos..self.end];
        self.pos = self.end;
        out
    }

    /// Binary Data: two-byte length then that many bytes (zero-copy).
    #[inline]
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        self.bytes(len)
    }

    /// Raw bytes of a two-byte-length field, without UTF-8 validation.
    #[inline]
    pub fn field_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        self.take_slice(len)
    }

    /// A UTF-8 Encoded String: well-formed [MQTT-1.5.4-1] and free of U+0000 [MQTT-1.5.4-2].
    pub fn string(&mut self) -> Result<ByteString, DecodeError> {
        let raw = self.binary()?;
        if raw.contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// A UTF-8 String Pair (user property).
    #[inline]
    pub fn string_pair(&mut self) -> Result<UserProperty, DecodeError> {
        Ok((self.string()?, self.string()?))
    }

    /// Splits off the next `n` bytes as their own reader and skips them here.
    pub fn sub_reader(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let sub = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + n,
        };
        self.pos += n;
        Ok(sub)
    }
}

/// MQTT 5.0 property identifiers (§2.2.2.2).
pub mod prop {
    /// Payload Format Indicator (byte).
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message Expiry Interval (four-byte integer).
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content Type (string).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response Topic (string).
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation Data (binary).
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription Identifier (variable byte integer).
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session Expiry Interval (four-byte integer).
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned Client Identifier (string).
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server Keep Alive (two-byte integer).
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication Method (string).
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Authentication Data (binary).
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// Request Problem Information (byte).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will Delay Interval (four-byte integer).
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request Response Information (byte).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response Information (string).
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Server Reference (string).
    pub const SERVER_REFERENCE: u8 = 0x1C;
    /// Reason String (string).
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive Maximum (two-byte integer).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic Alias Maximum (two-byte integer).
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic Alias (two-byte integer).
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum QoS (byte).
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain Available (byte).
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User Property (string pair).
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum Packet Size (four-byte integer).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard Subscription Available (byte).
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription Identifier Available (byte).
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    /// Shared Subscription Available (byte).
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

    /// Bit mask of a set of property identifiers.
    pub const fn mask(ids: &[u8]) -> u64 {
        let mut m = 0u64;
        let mut i = 0;
        while i < ids.len() {
            m |= 1u64 << ids[i];
            i += 1;
        }
        m
    }

    /// Every identifier MQTT 5.0 defines.
    pub const KNOWN: u64 = mask(&[
        PAYLOAD_FORMAT_INDICATOR,
        MESSAGE_EXPIRY_INTERVAL,
        CONTENT_TYPE,
        RESPONSE_TOPIC,
        CORRELATION_DATA,
        SUBSCRIPTION_IDENTIFIER,
        SESSION_EXPIRY_INTERVAL,
        ASSIGNED_CLIENT_IDENTIFIER,
        SERVER_KEEP_ALIVE,
        AUTHENTICATION_METHOD,
        AUTHENTICATION_DATA,
        REQUEST_PROBLEM_INFORMATION,
        WILL_DELAY_INTERVAL,
        REQUEST_RESPONSE_INFORMATION,
        RESPONSE_INFORMATION,
        SERVER_REFERENCE,
        REASON_STRING,
        RECEIVE_MAXIMUM,
        TOPIC_ALIAS_MAXIMUM,
        TOPIC_ALIAS,
        MAXIMUM_QOS,
        RETAIN_AVAILABLE,
        USER_PROPERTY,
        MAXIMUM_PACKET_SIZE,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        SHARED_SUBSCRIPTION_AVAILABLE,
    ]);
}

/// Which properties a packet may carry and which of those may repeat (§2.2.2.2 table).
pub struct PropertySet {
    /// Packet name for errors.
    pub packet: &'static str,
    /// Allowed identifiers.
    pub allowed: u64,
    /// Identifiers that may appear more than once.
    pub repeatable: u64,
}

/// Reads a property block (length, then properties), checking each identifier is known,
/// allowed in `set`, and not duplicated unless repeatable; `on_property` reads the value.
pub fn read_properties<'a, F>(
    r: &mut Reader<'a>,
    set: &PropertySet,
    mut on_property: F,
) -> Result<(), DecodeError>
where
    F: FnMut(u8, &mut Reader<'a>) -> Result<(), DecodeError>,
{
    let len = r.varint()? as usize;
    let mut props = r.sub_reader(len)?;
    let mut seen = 0u64;
    while !props.is_empty() {
        let id = props.varint()?;
        if id >= 64 || prop::KNOWN & (1u64 << id) == 0 {
            return Err(DecodeError::UnknownProperty(id));
        }
        let id = id as u8;
        let bit = 1u64 << id;
        if set.allowed & bit == 0 {
            return Err(DecodeError::PropertyNotAllowed {
                property: id,
                packet: set.packet,
            });
        }
        if seen & bit != 0 && set.repeatable & bit == 0 {
            return Err(DecodeError::DuplicateProperty(id));
        }
        seen |= bit;
        on_property(id, &mut props)?;
    }
    Ok(())
}

/// Error for a property identifier a reader's match did not expect (kept in step with the
/// [`PropertySet`], so this is a safety net rather than a reachable path).
pub fn not_allowed(id: u8, set: &PropertySet) -> DecodeError {
    DecodeError::PropertyNotAllowed {
        property: id,
        packet: set.packet,
    }
}

/// A byte property that must be 0 or 1.
#[inline]
pub fn flag_value(id: u8, r: &mut Reader<'_>) -> Result<u8, DecodeError> {
    match r.u8()? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

/// A two-byte property that must not be 0.
#[inline]
pub fn nonzero_u16(id: u8, r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(id)),
        v => Ok(v),
    }
}

/// A four-byte property that must not be 0.
#[inline]
pub fn nonzero_u32(id: u8, r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    match r.u32()? {
        0 => Err(DecodeError::InvalidPropertyValue(id)),
        v => Ok(v),
    }
}

/// A Subscription Identifier: a Variable Byte Integer that must not be 0 (§3.8.2.1.2).
#[inline]
pub fn subscription_identifier(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    match r.varint()? {
        0 => Err(DecodeError::InvalidPropertyValue(
            prop::SUBSCRIPTION_IDENTIFIER,
        )),
        v => Ok(v),
    }
}

/// Sizes and writes property blocks; the `len_*` functions return the encoded size of one
/// optional property (0 when absent), the `put_*` functions write it.
pub mod props {
    use super::*;

    /// Size of a byte property.
    #[inline]
    pub fn len_u8(v: Option<u8>) -> usize {
        if v.is_some() {
            2
        } else {
            0
        }
    }

    /// Size of a two-byte property.
    #[inline]
    pub fn len_u16(v: Option<u16>) -> usize {
        if v.is_some() {
            3
        } else {
            0
        }
    }

    /// Size of a four-byte property.
    #[inline]
    pub fn len_u32(v: Option<u32>) -> usize {
        if v.is_some() {
            5
        } else {
            0
        }
    }

    /// Size of a Variable Byte Integer property.
    #[inline]
    pub fn len_varint(v: Option<u32>) -> Result<usize, EncodeError> {
        match v {
            None => Ok(0),
            Some(v) if v as usize > MAX_VARINT => Err(EncodeError::VarintTooLarge(v)),
            Some(v) => Ok(1 + varint_len(v as usize)),
        }
    }

    /// Size of a string or binary property.
    #[inline]
    pub fn len_field(v: Option<&[u8]>) -> Result<usize, EncodeError> {
        match v {
            None => Ok(0),
            Some(b) => Ok(1 + field_len(b)?),
        }
    }

    /// Size of the user properties.
    #[inline]
    pub fn len_user(v: &[UserProperty]) -> Result<usize, EncodeError> {
        let mut n = 0;
        for (k, val) in v {
            n += 1 + field_len(k.as_bytes())? + field_len(val.as_bytes())?;
        }
        Ok(n)
    }

    /// Size of a property block holding `len` bytes of properties, length prefix included.
    #[inline]
    pub fn block_len(len: usize) -> Result<usize, EncodeError> {
        if len > MAX_VARINT {
            return Err(EncodeError::PacketTooLarge(len));
        }
        Ok(varint_len(len) + len)
    }

    /// Writes a byte property.
    #[inline]
    pub fn put_u8(buf: &mut BytesMut, id: u8, v: Option<u8>) {
        if let Some(v) = v {
            buf.put_u8(id);
            buf.put_u8(v);
        }
    }

    /// Writes a two-byte property.
    #[inline]
    pub fn put_u16(buf: &mut BytesMut, id: u8, v: Option<u16>) {
        if let Some(v) = v {
            buf.put_u8(id);
            buf.put_u16(v);
        }
    }

    /// Writes a four-byte property.
    #[inline]
    pub fn put_u32(buf: &mut BytesMut, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            buf.put_u8(id);
            buf.put_u32(v);
        }
    }

    /// Writes a Variable Byte Integer property.
    #[inline]
    pub fn put_varint(buf: &mut BytesMut, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            buf.put_u8(id);
            super::put_varint(buf, v as usize);
        }
    }

    /// Writes a string or binary property.
    #[inline]
    pub fn put_field(buf: &mut BytesMut, id: u8, v: Option<&[u8]>) {
        if let Some(v) = v {
            buf.put_u8(id);
            super::put_field(buf, v);
        }
    }

    /// Writes the user properties, in order.
    #[inline]
    pub fn put_user(buf: &mut BytesMut, v: &[UserProperty]) {
        for (k, val) in v {
            buf.put_u8(prop::USER_PROPERTY);
            super::put_field(buf, k.as_bytes());
            super::put_field(buf, val.as_bytes());
        }
    }
}

/// `Option<ByteString>` as `Option<&[u8]>`.
#[inline]
pub fn opt_str(v: &Option<ByteString>) -> Option<&[u8]> {
    v.as_ref().map(|s| s.as_bytes().as_ref())
}

/// `Option<Bytes>` as `Option<&[u8]>`.
#[inline]
pub fn opt_bin(v: &Option<Bytes>) -> Option<&[u8]> {
    v.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_at_the_byte_boundaries() {
        for v in [
            0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VARINT,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "length of {v}");
            let bytes = buf.freeze();
            assert_eq!(Reader::new(&bytes).varint().unwrap() as usize, v);
        }
    }

    #[test]
    fn varint_examples_from_the_spec_encode_as_listed() {
        // MQTT 5.0 §1.5.5 table: 127 = 0x7F, 128 = 0x80 0x01, 16383 = 0xFF 0x7F,
        // 268435455 = 0xFF 0xFF 0xFF 0x7F.
        let cases: [(usize, &[u8]); 4] = [
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (v, want) in cases {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            assert_eq!(&buf[..], want);
        }
    }

    #[test]
    fn fixed_header_waits_for_the_remaining_length_and_rejects_a_fifth_byte() {
        assert_eq!(FixedHeader::parse(&[]), Ok(None));
        assert_eq!(FixedHeader::parse(&[0x30]), Ok(None));
        assert_eq!(FixedHeader::parse(&[0x30, 0x80, 0x80]), Ok(None));
        assert_eq!(
            FixedHeader::parse(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::MalformedRemainingLength)
        );
        let h = FixedHeader::parse(&[0x32, 0xC1, 0x02]).unwrap().unwrap();
        assert_eq!(
            (h.packet_type, h.flags, h.header_len, h.remaining_len),
            (3, 2, 3, 321)
        );
    }

    #[test]
    fn reader_rejects_reads_past_the_end() {
        let bytes = Bytes::from_static(&[0x00, 0x05, b'a']);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.binary(), Err(DecodeError::Truncated));
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32(), Err(DecodeError::Truncated));
        let bytes = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(
            Reader::new(&bytes).varint(),
            Err(DecodeError::MalformedRemainingLength)
        );
    }

    #[test]
    fn strings_reject_ill_formed_utf8_and_nul() {
        let bad = Bytes::from_static(&[0x00, 0x02, 0xC3, 0x28]);
        assert_eq!(Reader::new(&bad).string(), Err(DecodeError::InvalidUtf8));
        // An encoded UTF-16 surrogate (U+D800) is ill-formed too [MQTT-1.5.4-1].
        let surrogate = Bytes::from_static(&[0x00, 0x03, 0xED, 0xA0, 0x80]);
        assert_eq!(
            Reader::new(&surrogate).string(),
            Err(DecodeError::InvalidUtf8)
        );
        let nul = Bytes::from_static(&[0x00, 0x03, b'a', 0x00, b'b']);
        assert_eq!(Reader::new(&nul).string(), Err(DecodeError::NullCharacter));
        let ok = Bytes::from_static(&[0x00, 0x03, b'a', b'/', b'b']);
        assert_eq!(Reader::new(&ok).string().unwrap(), "a/b");
    }

    #[test]
    fn strings_are_zero_copy_slices_of_the_packet() {
        let bytes = Bytes::from(vec![0x00, 0x03, b'a', b'/', b'b']);
        let s = Reader::new(&bytes).string().unwrap();
        assert_eq!(s.as_bytes().as_ptr(), bytes[2..].as_ptr());
    }

    #[test]
    fn field_len_rejects_more_than_65535_bytes() {
        assert_eq!(field_len(&[0u8; 65_535]), Ok(65_537));
        assert_eq!(
            field_len(&vec![0u8; 65_536]),
            Err(EncodeError::StringTooLong(65_536))
        );
    }
}
