//! Stateless cookies (RFC 6347 §4.2.1): `HMAC-SHA256(secret, address ‖ client random)`,
//! cut to 16 octets. The secret changes every [`ROTATE`]; a cookie made with the previous
//! secret is still good, so a client that got its HelloVerifyRequest just before a change
//! is not refused.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long one secret makes cookies.
pub const ROTATE: Duration = Duration::from_secs(300);
/// Cookie length.
pub const LEN: usize = 16;

struct Secrets {
    current: [u8; 32],
    previous: [u8; 32],
    since: Instant,
}

/// The cookie maker of one listener.
pub struct Cookies {
    secrets: RwLock<Secrets>,
}

fn random_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    openssl::rand::rand_bytes(&mut s).expect("the system's random source");
    s
}

fn mac(secret: &[u8; 32], peer: SocketAddr, random: &[u8; 32]) -> [u8; LEN] {
    let key = PKey::hmac(secret).expect("an HMAC key");
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("HMAC-SHA256");
    let ip = match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    signer.update(&ip).expect("HMAC update");
    signer
        .update(&peer.port().to_be_bytes())
        .expect("HMAC update");
    signer.update(random).expect("HMAC update");
    let full = signer.sign_to_vec().expect("HMAC");
    let mut out = [0u8; LEN];
    out.copy_from_slice(&full[..LEN]);
    out
}

impl Default for Cookies {
    fn default() -> Self {
        Cookies {
            secrets: RwLock::new(Secrets {
                current: random_secret(),
                previous: random_secret(),
                since: Instant::now(),
            }),
        }
    }
}

impl Cookies {
    fn rotate_if_due(&self) {
        if self.secrets.read().since.elapsed() < ROTATE {
            return;
        }
        let mut s = self.secrets.write();
        if s.since.elapsed() >= ROTATE {
            s.previous = s.current;
            s.current = random_secret();
            s.since = Instant::now();
        }
    }

    /// The cookie for `peer` and the ClientHello's random.
    pub fn make(&self, peer: SocketAddr, random: &[u8; 32]) -> [u8; LEN] {
        self.rotate_if_due();
        mac(&self.secrets.read().current, peer, random)
    }

    /// True if `cookie` is one this listener made for `peer` and this random, with the
    /// current or the previous secret.
    pub fn check(&self, peer: SocketAddr, random: &[u8; 32], cookie: &[u8]) -> bool {
        if cookie.len() != LEN {
            return false;
        }
        self.rotate_if_due();
        let s = self.secrets.read();
        [s.current, s.previous]
            .iter()
            .any(|secret| openssl::memcmp::eq(&mac(secret, peer, random), cookie))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_good_for_its_address_and_random_only() {
        let c = Cookies::default();
        let a: SocketAddr = "192.0.2.1:5684".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5685".parse().unwrap();
        let cookie = c.make(a, &[1; 32]);
        assert!(c.check(a, &[1; 32], &cookie));
        assert!(!c.check(b, &[1; 32], &cookie));
        assert!(!c.check(a, &[2; 32], &cookie));
        assert!(!c.check(a, &[1; 32], &cookie[..8]));
        assert!(!c.check(a, &[1; 32], &[0; LEN]));
    }
}
