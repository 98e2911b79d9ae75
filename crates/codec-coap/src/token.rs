//! The Token (RFC 7252 §5.3.1): 0 to 8 opaque octets matching a response to its request.

use std::fmt;

/// Most octets a Token may have (RFC 7252 §3: TKL 9-15 are reserved).
pub const MAX_TOKEN_LEN: usize = 8;

/// A Token of at most 8 octets, stored inline so it is `Copy` and cannot be too long.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Token {
    len: u8,
    bytes: [u8; MAX_TOKEN_LEN],
}

impl Token {
    /// The zero-length Token.
    pub const EMPTY: Token = Token {
        len: 0,
        bytes: [0; MAX_TOKEN_LEN],
    };

    /// A Token holding `raw`, or `None` if it has more than 8 octets.
    pub fn new(raw: &[u8]) -> Option<Token> {
        if raw.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut bytes = [0; MAX_TOKEN_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Token {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// A Token of the 8 big-endian octets of `value` with leading zero octets dropped.
    pub fn from_u64(value: u64) -> Token {
        let raw = value.to_be_bytes();
        let skip = raw.iter().take_while(|b| **b == 0).count();
        let mut token = Token::EMPTY;
        token.len = (MAX_TOKEN_LEN - skip) as u8;
        token.bytes[..token.len as usize].copy_from_slice(&raw[skip..]);
        token
    }

    /// The Token's octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Number of octets (the TKL field).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the Token has no octets.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_eight_octets() {
        assert_eq!(Token::new(&[1; 8]).map(|t| t.len()), Some(8));
        assert_eq!(Token::new(&[1; 9]), None);
        assert!(Token::new(&[]).is_some_and(|t| t.is_empty()));
    }

    #[test]
    fn from_u64_drops_leading_zero_octets() {
        assert_eq!(Token::from_u64(0).as_bytes(), &[] as &[u8]);
        assert_eq!(Token::from_u64(0x01_02).as_bytes(), &[1, 2]);
        assert_eq!(Token::from_u64(u64::MAX).len(), 8);
        assert_eq!(format!("{:?}", Token::from_u64(0xab_cd)), "Token(abcd)");
    }
}
