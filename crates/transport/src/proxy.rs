//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): a load balancer
//! in front of a listener opens each connection with a header naming the client's real
//! address. A listener with `proxy_protocol = true` reads it before anything else (the
//! TLS handshake, the WebSocket upgrade) and refuses a connection that does not start
//! with one; the client's address then stands for the peer everywhere (access rules,
//! client info, `$SYS` events).
//!
//! [`parse`] is sans-IO; [`read_header`] reads exactly the header's bytes off the socket,
//! so what follows it is left for the protocol.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The 12 bytes every version 2 header starts with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// The most address and TLV bytes a version 2 header may carry here (HAProxy's own TLVs
/// and cloud load balancers' stay far below it).
const V2_MAX_PAYLOAD: usize = 4096;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied connection from this client address.
    Proxied(SocketAddr),
    /// The proxy's own connection (v2 LOCAL, a health check) or an address family that
    /// names no IP client (v1 UNKNOWN, v2 UNSPEC or UNIX): the socket's peer stands.
    Local,
}

/// Why a connection's first bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Neither signature.
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    /// A v1 header that breaks the grammar or runs past 107 bytes.
    #[error("malformed PROXY protocol v1 header")]
    BadV1,
    /// A v2 header with a bad version, command, family or length.
    #[error("malformed PROXY protocol v2 header")]
    BadV2,
}

/// Parse a header at the start of `buf`: `Ok(Some((header, length)))` when it is whole,
/// `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.first() == Some(&b'\r') || buf.is_empty() {
        let n = buf.len().min(V2_SIGNATURE.len());
        if buf[..n] != V2_SIGNATURE[..n] {
            return Err(ProxyError::Missing);
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(6);
    if buf[..n] != b"PROXY "[..n] {
        return Err(ProxyError::Missing);
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::BadV1)
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err(ProxyError::BadV1);
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::BadV1)?;
    let mut parts = line.split(' ');
    let _proxy = parts.next();
    let header = match parts.next() {
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut field = || parts.next().ok_or(ProxyError::BadV1);
            let src: IpAddr = field()?.parse().map_err(|_| ProxyError::BadV1)?;
            let dst: IpAddr = field()?.parse().map_err(|_| ProxyError::BadV1)?;
            let sport = port(field()?)?;
            let _dport = port(field()?)?;
            if parts.next().is_some()
                || src.is_ipv4() != (family == "TCP4")
                || src.is_ipv4() != dst.is_ipv4()
            {
                return Err(ProxyError::BadV1);
            }
            ProxyHeader::Proxied(SocketAddr::new(src, sport))
        }
        _ => return Err(ProxyError::BadV1),
    };
    Ok(Some((header, len)))
}

/// A v1 port: decimal, no sign, no leading zero.
fn port(s: &str) -> Result<u16, ProxyError> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ProxyError::BadV1);
    }
    s.parse().map_err(|_| ProxyError::BadV1)
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0F);
    if version != 2 || command > 1 {
        return Err(ProxyError::BadV2);
    }
    let payload = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyError::BadV2);
    }
    let len = 16 + payload;
    if buf.len() < len {
        return Ok(None);
    }
    let addr = &buf[16..len];
    let header = match (command, buf[13] >> 4) {
        // LOCAL: the proxy speaking for itself.
        (0, _) => ProxyHeader::Local,
        // INET: src(4) dst(4) sport(2) dport(2).
        (_, 1) => {
            if addr.len() < 12 {
                return Err(ProxyError::BadV2);
            }
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            let sport = u16::from_be_bytes([addr[8], addr[9]]);
            ProxyHeader::Proxied(SocketAddr::new(IpAddr::V4(ip), sport))
        }
        // INET6: src(16) dst(16) sport(2) dport(2).
        (_, 2) => {
            if addr.len() < 36 {
                return Err(ProxyError::BadV2);
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[..16]);
            let sport = u16::from_be_bytes([addr[32], addr[33]]);
            ProxyHeader::Proxied(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), sport))
        }
        // UNSPEC and UNIX name no IP client.
        (_, 0 | 3) => ProxyHeader::Local,
        _ => return Err(ProxyError::BadV2),
    };
    Ok(Some((header, len)))
}

/// Read the header off `sock`, exactly its bytes, and return what it says. Fails when the
/// connection does not start with a well-formed header (the caller closes it).
pub async fn read_header(sock: &mut TcpStream) -> io::Result<ProxyHeader> {
    let invalid = |e: ProxyError| io::Error::new(io::ErrorKind::InvalidData, e);
    // A header is common and whole in the first segment: look without taking.
    let mut peeked = [0u8; 16 + 216];
    let n = sock.peek(&mut peeked).await?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if let Some((header, len)) = parse(&peeked[..n]).map_err(invalid)? {
        let mut skip = vec![0u8; len];
        sock.read_exact(&mut skip).await?;
        return Ok(header);
    }
    // Split across segments: read exactly, as far as the header says.
    let mut buf = Vec::with_capacity(V1_MAX);
    if peeked[0] == b'\r' {
        buf.resize(16, 0);
        sock.read_exact(&mut buf).await?;
        let payload = u16::from_be_bytes([buf[14], buf[15]]) as usize;
        if payload > V2_MAX_PAYLOAD {
            return Err(invalid(ProxyError::BadV2));
        }
        buf.resize(16 + payload, 0);
        sock.read_exact(&mut buf[16..]).await?;
    } else {
        // v1: a byte at a time up to its CRLF, so nothing after it is taken.
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(invalid(ProxyError::BadV1));
            }
            buf.push(sock.read_u8().await?);
        }
    }
    match parse(&buf).map_err(invalid)? {
        Some((header, len)) if len == buf.len() => Ok(header),
        _ => Err(invalid(ProxyError::BadV2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addr: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | command);
        b.push(family);
        b.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        b.extend_from_slice(addr);
        b
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown_headers_parse() {
        let h = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /";
        assert_eq!(
            parse(h),
            Ok(Some((
                ProxyHeader::Proxied("192.168.0.1:56324".parse().unwrap()),
                47
            )))
        );
        let h = b"PROXY TCP6 ffff:f::1 ::1 4000 1883\r\n";
        assert_eq!(
            parse(h),
            Ok(Some((
                ProxyHeader::Proxied("[ffff:f::1]:4000".parse().unwrap()),
                h.len()
            )))
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Some((ProxyHeader::Local, 15)))
        );
        // Incomplete: more bytes needed.
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(None));
        assert_eq!(parse(b"PRO"), Ok(None));
    }

    #[test]
    fn v1_garbage_is_refused() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(ProxyError::BadV1),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse(&[b'P'; 200]), Err(ProxyError::Missing));
        let mut long = b"PROXY TCP4 ".to_vec();
        long.extend(std::iter::repeat_n(b'1', 200));
        assert_eq!(parse(&long), Err(ProxyError::BadV1));
        assert_eq!(parse(b"\x10\x00\x00\x04MQTT"), Err(ProxyError::Missing));
    }

    #[test]
    fn v2_inet_inet6_local_and_unix_headers_parse() {
        let h = v2(1, 0x11, &[10, 0, 0, 7, 10, 0, 0, 1, 0x1F, 0x90, 0x07, 0x5B]);
        assert_eq!(
            parse(&h),
            Ok(Some((
                ProxyHeader::Proxied("10.0.0.7:8080".parse().unwrap()),
                28
            )))
        );
        let mut six = vec![0u8; 36];
        six[15] = 1;
        six[32] = 0x30;
        six[33] = 0x39;
        assert_eq!(
            parse(&v2(1, 0x21, &six)),
            Ok(Some((
                ProxyHeader::Proxied("[::1]:12345".parse().unwrap()),
                52
            )))
        );
        assert_eq!(parse(&v2(0, 0x00, &[])), Ok(Some((ProxyHeader::Local, 16))));
        assert_eq!(
            parse(&v2(1, 0x31, &[0; 216])),
            Ok(Some((ProxyHeader::Local, 232)))
        );
        // With TLVs after the addresses, the length covers them.
        let mut with_tlv = vec![127, 0, 0, 9, 127, 0, 0, 1, 0, 80, 0, 81];
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0xAA]);
        assert_eq!(parse(&v2(1, 0x11, &with_tlv)).unwrap().unwrap().1, 32);
        // Incomplete.
        assert_eq!(parse(&h[..20]), Ok(None));
        assert_eq!(parse(&h[..5]), Ok(None));
    }

    #[test]
    fn v2_garbage_is_refused() {
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert_eq!(parse(&bad_version), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(2, 0x11, &[0; 12])), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(1, 0x11, &[0; 4])), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(1, 0x41, &[0; 12])), Err(ProxyError::BadV2));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(parse(&huge), Err(ProxyError::BadV2));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX\n"), Err(ProxyError::Missing));
    }
}
