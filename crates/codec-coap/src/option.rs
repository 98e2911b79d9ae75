//! Options (RFC 7252 §3.1, §5.4, §5.10): numbers, their properties, `uint` values, and
//! [`Options`], the list a message carries, always in option-number order.

use bytes::Bytes;

/// If-Match (RFC 7252 §5.10.8.1), repeatable, critical.
pub const IF_MATCH: u16 = 1;
/// Uri-Host (RFC 7252 §5.10.1).
pub const URI_HOST: u16 = 3;
/// ETag (RFC 7252 §5.10.6), repeatable in requests.
pub const ETAG: u16 = 4;
/// If-None-Match (RFC 7252 §5.10.8.2), empty value.
pub const IF_NONE_MATCH: u16 = 5;
/// Observe (RFC 7641 §2).
pub const OBSERVE: u16 = 6;
/// Uri-Port (RFC 7252 §5.10.1).
pub const URI_PORT: u16 = 7;
/// Location-Path (RFC 7252 §5.10.7), repeatable.
pub const LOCATION_PATH: u16 = 8;
/// Uri-Path (RFC 7252 §5.10.1), repeatable, one segment each.
pub const URI_PATH: u16 = 11;
/// Content-Format (RFC 7252 §5.10.3).
pub const CONTENT_FORMAT: u16 = 12;
/// Max-Age (RFC 7252 §5.10.5), seconds, default 60.
pub const MAX_AGE: u16 = 14;
/// Uri-Query (RFC 7252 §5.10.1), repeatable, one `key=value` argument each.
pub const URI_QUERY: u16 = 15;
/// Accept (RFC 7252 §5.10.4).
pub const ACCEPT: u16 = 17;
/// Location-Query (RFC 7252 §5.10.7), repeatable.
pub const LOCATION_QUERY: u16 = 20;
/// Block2 (RFC 7959 §2.1).
pub const BLOCK2: u16 = 23;
/// Block1 (RFC 7959 §2.1).
pub const BLOCK1: u16 = 27;
/// Size2 (RFC 7959 §4).
pub const SIZE2: u16 = 28;
/// Proxy-Uri (RFC 7252 §5.10.2).
pub const PROXY_URI: u16 = 35;
/// Proxy-Scheme (RFC 7252 §5.10.2).
pub const PROXY_SCHEME: u16 = 39;
/// Size1 (RFC 7252 §5.10.9, RFC 7959 §4).
pub const SIZE1: u16 = 60;

/// Every option number defined by RFC 7252, RFC 7641 and RFC 7959, in order: the usual
/// `known` set for [`crate::Message::unknown_critical`].
pub const KNOWN: &[u16] = &[
    IF_MATCH,
    URI_HOST,
    ETAG,
    IF_NONE_MATCH,
    OBSERVE,
    URI_PORT,
    LOCATION_PATH,
    URI_PATH,
    CONTENT_FORMAT,
    MAX_AGE,
    URI_QUERY,
    ACCEPT,
    LOCATION_QUERY,
    BLOCK2,
    BLOCK1,
    SIZE2,
    PROXY_URI,
    PROXY_SCHEME,
    SIZE1,
];

/// Critical options must be understood; odd numbers are critical (RFC 7252 §5.4.1, §5.4.6).
pub const fn is_critical(number: u16) -> bool {
    number & 0x01 != 0
}

/// Elective options may be ignored when not understood (RFC 7252 §5.4.1, §5.4.6).
pub const fn is_elective(number: u16) -> bool {
    !is_critical(number)
}

/// Unsafe-to-forward options must be understood by a proxy (RFC 7252 §5.4.2, §5.4.6).
pub const fn is_unsafe(number: u16) -> bool {
    number & 0x02 != 0
}

/// NoCacheKey options are not part of the cache key (RFC 7252 §5.4.6: bits `11100`
/// equal to `11100`); only meaningful for safe-to-forward options.
pub const fn is_no_cache_key(number: u16) -> bool {
    number & 0x1E == 0x1C
}

/// Whether a known option may occur more than once (RFC 7252 §5.10 table, RFC 7641,
/// RFC 7959). Unknown options are treated as repeatable (their definition is unknown).
pub fn is_repeatable(number: u16) -> bool {
    matches!(
        number,
        IF_MATCH | ETAG | LOCATION_PATH | URI_PATH | URI_QUERY | LOCATION_QUERY
    ) || !KNOWN.contains(&number)
}

/// The value lengths RFC 7252 §5.10 (and RFC 7641 §2, RFC 7959 §2.1, §4) allow for a known
/// option, or `None` for an unknown one. A value outside them is treated like an
/// unrecognized option (RFC 7252 §5.4.3).
pub fn length_range(number: u16) -> Option<(usize, usize)> {
    Some(match number {
        IF_MATCH => (0, 8),
        URI_HOST => (1, 255),
        ETAG => (1, 8),
        IF_NONE_MATCH => (0, 0),
        OBSERVE => (0, 3),
        URI_PORT => (0, 2),
        LOCATION_PATH | URI_PATH | URI_QUERY | LOCATION_QUERY => (0, 255),
        CONTENT_FORMAT | ACCEPT => (0, 2),
        MAX_AGE | SIZE1 | SIZE2 => (0, 4),
        BLOCK1 | BLOCK2 => (0, 3),
        PROXY_URI => (1, 1034),
        PROXY_SCHEME => (1, 255),
        _ => return None,
    })
}

/// The value of a `uint` option, or `None` if it has more than 4 octets (RFC 7252 §3.2:
/// a non-negative integer in network byte order, in as many octets as the value needs).
/// Leading zero octets are accepted, as §3.2 asks of a recipient.
pub fn decode_uint(value: &[u8]) -> Option<u32> {
    if value.len() > 4 {
        return None;
    }
    Some(value.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// The minimal `uint` encoding of `value`: no leading zero octets, so 0 is empty
/// (RFC 7252 §3.2).
pub fn encode_uint(value: u32) -> Bytes {
    let raw = value.to_be_bytes();
    let skip = raw.iter().take_while(|b| **b == 0).count();
    Bytes::copy_from_slice(&raw[skip..])
}

/// One option instance: its number and opaque value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoapOption {
    /// The option number.
    pub number: u16,
    /// The value as it appears on the wire.
    pub value: Bytes,
}

/// The options of a message, kept in option-number order; instances of a repeated option
/// keep the order they were added in (RFC 7252 §3.1, §5.4.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Options {
    list: Vec<CoapOption>,
}

impl Options {
    /// No options.
    pub fn new() -> Options {
        Options::default()
    }

    /// Adds an instance of `number`, after every instance with a number not above it.
    pub fn push(&mut self, number: u16, value: impl Into<Bytes>) {
        let at = self.list.partition_point(|o| o.number <= number);
        self.list.insert(
            at,
            CoapOption {
                number,
                value: value.into(),
            },
        );
    }

    /// Appends an option already known to sort last (the decoder's path).
    pub(crate) fn push_sorted(&mut self, option: CoapOption) {
        debug_assert!(self.list.last().is_none_or(|o| o.number <= option.number));
        self.list.push(option);
    }

    /// Adds `number` with the minimal `uint` encoding of `value`.
    pub fn push_uint(&mut self, number: u16, value: u32) {
        self.push(number, encode_uint(value));
    }

    /// Replaces every instance of `number` with one holding `value`.
    pub fn set(&mut self, number: u16, value: impl Into<Bytes>) {
        self.remove(number);
        self.push(number, value);
    }

    /// Replaces every instance of `number` with one holding the `uint` `value`.
    pub fn set_uint(&mut self, number: u16, value: u32) {
        self.set(number, encode_uint(value));
    }

    /// Removes every instance of `number`; returns how many there were.
    pub fn remove(&mut self, number: u16) -> usize {
        let before = self.list.len();
        self.list.retain(|o| o.number != number);
        before - self.list.len()
    }

    /// The value of the first instance of `number`.
    pub fn get(&self, number: u16) -> Option<&Bytes> {
        self.get_all(number).next()
    }

    /// The values of every instance of `number`, in order.
    pub fn get_all(&self, number: u16) -> impl Iterator<Item = &Bytes> + '_ {
        let start = self.list.partition_point(|o| o.number < number);
        self.list[start..]
            .iter()
            .take_while(move |o| o.number == number)
            .map(|o| &o.value)
    }

    /// The `uint` value of the first instance of `number`: `None` if absent, `Some(None)`
    /// if longer than 4 octets.
    pub fn get_uint(&self, number: u16) -> Option<Option<u32>> {
        self.get(number).map(|v| decode_uint(v))
    }

    /// Whether `number` occurs at all.
    pub fn contains(&self, number: u16) -> bool {
        self.get(number).is_some()
    }

    /// Every option, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, CoapOption> {
        self.list.iter()
    }

    /// Number of option instances.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no options.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl<'a> IntoIterator for &'a Options {
    type Item = &'a CoapOption;
    type IntoIter = std::slice::Iter<'a, CoapOption>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_follow_the_number_bits() {
        // RFC 7252 §5.10 table: C and U columns.
        assert!(is_critical(IF_MATCH) && is_critical(URI_PATH) && is_critical(BLOCK1));
        assert!(is_elective(ETAG) && is_elective(CONTENT_FORMAT) && is_elective(SIZE1));
        assert!(is_unsafe(URI_HOST) && is_unsafe(URI_PORT) && is_unsafe(MAX_AGE));
        assert!(!is_unsafe(ETAG) && !is_unsafe(CONTENT_FORMAT));
        assert!(is_no_cache_key(SIZE1) && is_no_cache_key(SIZE2));
        assert!(!is_no_cache_key(ETAG));
    }

    #[test]
    fn repeatable_and_length_ranges_follow_the_tables() {
        assert!(is_repeatable(URI_PATH) && is_repeatable(9999));
        assert!(!is_repeatable(CONTENT_FORMAT) && !is_repeatable(OBSERVE));
        assert_eq!(length_range(URI_HOST), Some((1, 255)));
        assert_eq!(length_range(PROXY_URI), Some((1, 1034)));
        assert_eq!(length_range(2049), None);
    }

    #[test]
    fn uint_values_are_minimal_on_encode_and_lenient_on_decode() {
        assert_eq!(encode_uint(0), Bytes::new());
        assert_eq!(encode_uint(1), Bytes::from_static(&[1]));
        assert_eq!(encode_uint(0x0100), Bytes::from_static(&[1, 0]));
        assert_eq!(encode_uint(u32::MAX).len(), 4);
        assert_eq!(decode_uint(&[]), Some(0));
        assert_eq!(decode_uint(&[0, 0, 1]), Some(1));
        assert_eq!(decode_uint(&[1, 2, 3, 4]), Some(0x0102_0304));
        assert_eq!(decode_uint(&[1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn options_stay_in_number_order_and_repeats_keep_insertion_order() {
        let mut options = Options::new();
        options.push(URI_QUERY, &b"b=2"[..]);
        options.push(URI_PATH, &b"ps"[..]);
        options.push(URI_QUERY, &b"a=1"[..]);
        options.push(URI_PATH, &b"t"[..]);
        options.push_uint(CONTENT_FORMAT, 50);
        let numbers: Vec<u16> = options.iter().map(|o| o.number).collect();
        assert_eq!(
            numbers,
            [URI_PATH, URI_PATH, CONTENT_FORMAT, URI_QUERY, URI_QUERY]
        );
        let paths: Vec<&[u8]> = options.get_all(URI_PATH).map(|v| &v[..]).collect();
        assert_eq!(paths, [&b"ps"[..], b"t"]);
        assert_eq!(options.get_uint(CONTENT_FORMAT), Some(Some(50)));
        assert_eq!(options.get_uint(ACCEPT), None);
        options.set_uint(CONTENT_FORMAT, 0);
        assert_eq!(options.get(CONTENT_FORMAT), Some(&Bytes::new()));
        assert_eq!(options.remove(URI_QUERY), 2);
        assert_eq!(options.len(), 3);
    }
}
