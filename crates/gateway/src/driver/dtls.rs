//! DTLS as the datagram driver sees it, whatever library implements it: an [`Endpoint`]
//! per listener answers datagrams from addresses without a session (a stateless
//! HelloVerifyRequest, or a session once the address proved itself with the cookie), and
//! a [`Session`] per peer turns records into plain datagrams and back. The protocol's
//! channel sees plain datagrams only. Kept narrow so that RFC 9146 connection ids (a
//! session found by id, not by address) can come with another backend.

use std::net::SocketAddr;

/// What to do with a datagram from an address without a session.
pub enum Accept {
    /// Answer with this (a HelloVerifyRequest, never larger than the datagram) and keep
    /// nothing.
    Reply(Vec<u8>),
    /// Drop it.
    Drop,
    /// The address proved itself (a ClientHello with a good cookie): a session, with the
    /// records it answers with.
    Session(Box<dyn Session>, Vec<Vec<u8>>),
}

impl std::fmt::Debug for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Accept::Reply(r) => write!(f, "Reply({} octets)", r.len()),
            Accept::Drop => f.write_str("Drop"),
            Accept::Session(_, out) => write!(f, "Session({} records)", out.len()),
        }
    }
}

/// A listener's DTLS server side.
pub trait Endpoint: Send + Sync {
    /// A datagram from `peer`, which has no session. `admit`: the listener has room for
    /// one more peer; without it a proven address is dropped rather than given a session.
    fn accept(&self, peer: SocketAddr, datagram: &[u8], admit: bool) -> Accept;

    /// How long a session's handshake may take (`dtls_options.handshake_timeout`).
    fn handshake_timeout(&self) -> std::time::Duration;
}

/// Why a DTLS session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The handshake failed (unknown PSK identity, wrong key, bad certificate, …).
    Handshake(String),
    /// The peer closed the session (close_notify) or sent an alert.
    Closed,
    /// A record could not be processed or produced.
    Record(String),
}

/// One peer's DTLS session.
pub trait Session: Send {
    /// A datagram from the peer: records to send back go to `out`, application data to
    /// `plain`.
    fn input(
        &mut self,
        datagram: &[u8],
        out: &mut Vec<Vec<u8>>,
        plain: &mut Vec<Vec<u8>>,
    ) -> Result<(), SessionError>;

    /// The handshake is done.
    fn established(&self) -> bool;

    /// Who the peer proved to be: its PSK identity, or its certificate's subject.
    fn peer_identity(&self) -> Option<String>;

    /// Encrypt one application datagram into `out`.
    fn send(&mut self, plain: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), SessionError>;

    /// Say goodbye (close_notify) into `out`.
    fn close(&mut self, out: &mut Vec<Vec<u8>>);
}

/// PSK identities and their keys (`psk_authentication.init_file`).
pub type PskTable = std::collections::HashMap<Vec<u8>, Vec<u8>>;

/// Read a PSK file in EMQX's `psk_authentication.init_file` format: one
/// `<identity><separator><secret>` per line; the secret's octets are the key. Blank lines
/// and lines starting with `#` are skipped.
pub fn read_psk_file(path: &std::path::Path, separator: &str) -> std::io::Result<PskTable> {
    let text = std::fs::read_to_string(path)?;
    parse_psk(&text, separator).map_err(|line| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: line {line} is not <identity>{separator}<secret>",
                path.display()
            ),
        )
    })
}

/// The PSK table of a file's text; `Err(line number)` for a line without the separator.
pub fn parse_psk(text: &str, separator: &str) -> Result<PskTable, usize> {
    let mut table = PskTable::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((id, secret)) = line.split_once(separator) else {
            return Err(i + 1);
        };
        if id.is_empty() || secret.is_empty() {
            return Err(i + 1);
        }
        table.insert(id.as_bytes().to_vec(), secret.as_bytes().to_vec());
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_lines_are_identity_separator_secret() {
        let t = parse_psk("# devices\nemqx_c:BA0DB2A3\n\ndev-2:s3cr:et\n", ":").unwrap();
        assert_eq!(t[&b"emqx_c"[..]], b"BA0DB2A3");
        // Only the first separator splits.
        assert_eq!(t[&b"dev-2"[..]], b"s3cr:et");
        assert_eq!(parse_psk("no separator\n", ":"), Err(1));
        assert_eq!(parse_psk("a:b\n:x\n", ":"), Err(2));
        let t = parse_psk("a|b\n", "|").unwrap();
        assert_eq!(t[&b"a"[..]], b"b");
    }
}
