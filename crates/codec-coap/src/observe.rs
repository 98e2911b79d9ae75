//! Observe (RFC 7641): the 24-bit notification sequence and the freshness rule of §3.4,
//! as pure functions over caller-supplied times in milliseconds.

/// Observe value in a GET that registers an observation (RFC 7641 §2).
pub const REGISTER: u32 = 0;
/// Observe value in a GET that cancels an observation (RFC 7641 §2).
pub const DEREGISTER: u32 = 1;
/// Sequence numbers are 24-bit (RFC 7641 §4.4).
pub const SEQUENCE_MODULUS: u32 = 1 << 24;
/// Half the sequence space: a newer number is less than this far ahead (RFC 7641 §3.4).
pub const SEQUENCE_WINDOW: u32 = 1 << 23;
/// After this long, any notification is fresher than the last one (RFC 7641 §3.4).
pub const FRESHNESS_TIMEOUT_MS: u64 = 128_000;

/// The sequence number after `seq`, wrapping at 2^24 (RFC 7641 §4.4).
pub const fn next_sequence(seq: u32) -> u32 {
    (seq.wrapping_add(1)) % SEQUENCE_MODULUS
}

/// Whether a notification with Observe value `v2` received at `t2_ms` is fresher than one
/// with `v1` received at `t1_ms` (RFC 7641 §3.4): `v2` is ahead of `v1` by less than 2^23
/// in the 24-bit space, or more than 128 s passed between them. Values are reduced to 24
/// bits first. A client keeps the fresher and ignores the other.
pub const fn is_fresher(v1: u32, t1_ms: u64, v2: u32, t2_ms: u64) -> bool {
    let (v1, v2) = (v1 % SEQUENCE_MODULUS, v2 % SEQUENCE_MODULUS);
    (v1 < v2 && v2 - v1 < SEQUENCE_WINDOW)
        || (v1 > v2 && v1 - v2 > SEQUENCE_WINDOW)
        || t2_ms > t1_ms.saturating_add(FRESHNESS_TIMEOUT_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_at_24_bits() {
        assert_eq!(next_sequence(0), 1);
        assert_eq!(next_sequence(SEQUENCE_MODULUS - 1), 0);
    }

    #[test]
    fn a_larger_value_within_the_window_is_fresher() {
        assert!(is_fresher(5, 0, 6, 0));
        assert!(!is_fresher(6, 0, 5, 0));
        assert!(!is_fresher(5, 0, 5, 0), "an equal value is not fresher");
        assert!(is_fresher(0, 0, SEQUENCE_WINDOW - 1, 0));
        assert!(!is_fresher(0, 0, SEQUENCE_WINDOW, 0));
    }

    #[test]
    fn a_wrapped_value_is_fresher() {
        assert!(is_fresher(SEQUENCE_MODULUS - 1, 0, 0, 0));
        assert!(is_fresher(SEQUENCE_MODULUS - 10, 0, 3, 0));
        assert!(!is_fresher(3, 0, SEQUENCE_MODULUS - 10, 0));
    }

    #[test]
    fn after_128_seconds_anything_is_fresher() {
        assert!(!is_fresher(10, 1_000, 9, 1_000 + FRESHNESS_TIMEOUT_MS));
        assert!(is_fresher(10, 1_000, 9, 1_001 + FRESHNESS_TIMEOUT_MS));
        assert!(
            !is_fresher(10, u64::MAX - 5, 9, u64::MAX),
            "no overflow near the end of time"
        );
    }
}
