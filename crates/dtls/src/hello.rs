//! The part of DTLS 1.2 (RFC 6347) a server reads before it keeps any state for a peer:
//! a ClientHello's record and handshake headers and its cookie, and the
//! HelloVerifyRequest that asks for one (§4.2.1). No allocation on the refusal path
//! beyond the reply.

use std::ops::Range;

/// Record header: type, version, epoch, sequence number (48 bits), length.
const RECORD_HEADER: usize = 13;
/// Handshake header: type, length (24 bits), message_seq, fragment_offset, fragment_length.
const HANDSHAKE_HEADER: usize = 12;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const HELLO_VERIFY_REQUEST: u8 = 3;
/// DTLS 1.0's version number, which a HelloVerifyRequest carries whatever is negotiated.
const DTLS_1_0: [u8; 2] = [0xFE, 0xFF];

/// A ClientHello that arrived whole in one record at the start of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The record's sequence number.
    pub record_seq: u64,
    /// The handshake message_seq: 0 for a first ClientHello, 1 after a
    /// HelloVerifyRequest.
    pub message_seq: u16,
    /// The client's random.
    pub random: [u8; 32],
    /// Where the cookie is in the datagram.
    pub cookie: Range<usize>,
    /// Where the ClientHello's body is in the datagram.
    body: Range<usize>,
    /// Where the cookie's length octet is.
    cookie_len_at: usize,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_be_bytes([b[at], b[at + 1]]) as usize
}

fn u24_at(b: &[u8], at: usize) -> usize {
    (b[at] as usize) << 16 | (b[at + 1] as usize) << 8 | b[at + 2] as usize
}

/// Read the ClientHello at the start of `datagram`: `None` if it is not one, is
/// fragmented, is not in epoch 0, or is malformed.
pub fn client_hello(datagram: &[u8]) -> Option<ClientHello> {
    let d = datagram;
    if d.len() < RECORD_HEADER + HANDSHAKE_HEADER || d[0] != CONTENT_HANDSHAKE || d[1] != 0xFE {
        return None;
    }
    if d[3] != 0 || d[4] != 0 {
        return None; // epoch 0 only
    }
    let record_seq = d[5..11].iter().fold(0u64, |n, b| n << 8 | *b as u64);
    let record_len = u16_at(d, 11);
    let record = d.get(RECORD_HEADER..RECORD_HEADER + record_len)?;
    if record.len() < HANDSHAKE_HEADER || record[0] != CLIENT_HELLO {
        return None;
    }
    let length = u24_at(record, 1);
    let message_seq = u16_at(record, 4) as u16;
    let fragment_offset = u24_at(record, 6);
    let fragment_length = u24_at(record, 9);
    if fragment_offset != 0 || fragment_length != length || HANDSHAKE_HEADER + length > record.len()
    {
        return None;
    }
    let start = RECORD_HEADER + HANDSHAKE_HEADER;
    let body = start..start + length;
    let b = &d[body.clone()];
    // client_version, random, session_id, cookie.
    let mut at = 2;
    let random: [u8; 32] = b.get(at..at + 32)?.try_into().ok()?;
    at += 32;
    let sid_len = *b.get(at)? as usize;
    if sid_len > 32 {
        return None;
    }
    at += 1 + sid_len;
    let cookie_len = *b.get(at)? as usize;
    let cookie_len_at = start + at;
    at += 1;
    b.get(at..at + cookie_len)?;
    let cookie = start + at..start + at + cookie_len;
    // The rest (cipher suites, compression methods, extensions) must at least be there.
    if b.len() < at + cookie_len + 2 + 2 {
        return None;
    }
    Some(ClientHello {
        record_seq,
        message_seq,
        random,
        cookie,
        body,
        cookie_len_at,
    })
}

fn put_u24(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
}

fn put_record_header(out: &mut Vec<u8>, seq: u64, len: usize) {
    out.extend_from_slice(&[CONTENT_HANDSHAKE, DTLS_1_0[0], DTLS_1_0[1], 0, 0]);
    out.extend_from_slice(&seq.to_be_bytes()[2..]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
}

/// A HelloVerifyRequest carrying `cookie`, in a record with the ClientHello's sequence
/// number (§4.2.1: so the client can match it).
pub fn hello_verify_request(hello: &ClientHello, cookie: &[u8]) -> Vec<u8> {
    let body_len = 2 + 1 + cookie.len();
    let mut out = Vec::with_capacity(RECORD_HEADER + HANDSHAKE_HEADER + body_len);
    put_record_header(&mut out, hello.record_seq, HANDSHAKE_HEADER + body_len);
    out.push(HELLO_VERIFY_REQUEST);
    put_u24(&mut out, body_len);
    out.extend_from_slice(&[0, 0]); // message_seq 0
    put_u24(&mut out, 0);
    put_u24(&mut out, body_len);
    out.extend_from_slice(&DTLS_1_0);
    out.push(cookie.len() as u8);
    out.extend_from_slice(cookie);
    out
}

/// The first ClientHello the client sent, rebuilt from its second (`datagram`, with the
/// cookie): the same message without the cookie, message_seq 0, one record earlier.
/// Replaying both into a new server session brings it where a server that kept state
/// after its HelloVerifyRequest would be, without having kept any. `None` when the second
/// has record sequence number 0 (nothing can come before it).
pub fn first_hello(datagram: &[u8], hello: &ClientHello) -> Option<Vec<u8>> {
    let seq = hello.record_seq.checked_sub(1)?;
    let mut body = Vec::with_capacity(hello.body.len());
    body.extend_from_slice(&datagram[hello.body.start..hello.cookie_len_at]);
    body.push(0);
    body.extend_from_slice(&datagram[hello.cookie.end..hello.body.end]);
    let mut out = Vec::with_capacity(RECORD_HEADER + HANDSHAKE_HEADER + body.len());
    put_record_header(&mut out, seq, HANDSHAKE_HEADER + body.len());
    out[1..3].copy_from_slice(&datagram[1..3]);
    out.push(CLIENT_HELLO);
    put_u24(&mut out, body.len());
    out.extend_from_slice(&[0, 0]);
    put_u24(&mut out, 0);
    put_u24(&mut out, body.len());
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as a client writes it: one record, one unfragmented message.
    fn hello(record_seq: u64, message_seq: u16, cookie: &[u8]) -> Vec<u8> {
        let mut body = vec![0xFE, 0xFD];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.push(cookie.len() as u8);
        body.extend_from_slice(cookie);
        body.extend_from_slice(&[0, 2, 0xC0, 0xA8]); // TLS_PSK_WITH_AES_128_CCM_8
        body.extend_from_slice(&[1, 0]); // null compression
        let mut out = Vec::new();
        put_record_header(&mut out, record_seq, HANDSHAKE_HEADER + body.len());
        out[1..3].copy_from_slice(&[0xFE, 0xFD]);
        out.push(CLIENT_HELLO);
        put_u24(&mut out, body.len());
        out.extend_from_slice(&message_seq.to_be_bytes());
        put_u24(&mut out, 0);
        put_u24(&mut out, body.len());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_client_hello_is_read_with_its_cookie() {
        let d = hello(1, 1, b"cookie!");
        let h = client_hello(&d).unwrap();
        assert_eq!((h.record_seq, h.message_seq), (1, 1));
        assert_eq!(&d[h.cookie.clone()], b"cookie!");
        assert_eq!(h.random, [7; 32]);
        let d = hello(0, 0, b"");
        assert!(client_hello(&d).unwrap().cookie.is_empty());
    }

    #[test]
    fn what_is_not_a_whole_client_hello_is_refused() {
        let d = hello(0, 0, b"");
        for n in 0..d.len() {
            assert!(client_hello(&d[..n]).is_none(), "a prefix of {n} octets");
        }
        let mut fragmented = d.clone();
        fragmented[RECORD_HEADER + 8] = 1; // fragment_offset
        assert!(client_hello(&fragmented).is_none());
        let mut epoch1 = d.clone();
        epoch1[4] = 1;
        assert!(client_hello(&epoch1).is_none());
        let mut app_data = d;
        app_data[0] = 23;
        assert!(client_hello(&app_data).is_none());
    }

    #[test]
    fn the_verify_request_is_smaller_than_the_hello_it_answers() {
        let d = hello(5, 0, b"");
        let h = client_hello(&d).unwrap();
        let hvr = hello_verify_request(&h, &[9u8; 16]);
        assert_eq!(hvr.len(), RECORD_HEADER + HANDSHAKE_HEADER + 3 + 16);
        assert!(hvr.len() <= d.len());
        assert_eq!(&hvr[5..11], &5u64.to_be_bytes()[2..]);
        assert_eq!(hvr[RECORD_HEADER], HELLO_VERIFY_REQUEST);
    }

    #[test]
    fn the_first_hello_is_the_second_without_its_cookie() {
        let first = hello(0, 0, b"");
        let second = hello(1, 1, b"cookie!");
        let h = client_hello(&second).unwrap();
        assert_eq!(first_hello(&second, &h).unwrap(), first);
        let zero = hello(0, 1, b"cookie!");
        assert!(first_hello(&zero, &client_hello(&zero).unwrap()).is_none());
    }
}
