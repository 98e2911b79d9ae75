//! Typed scalar values written as text in the config: durations (`"15s"`), byte sizes
//! (`"1MB"`), bind addresses (`1883`, `"0.0.0.0:1883"`), and the `"infinity"` /
//! `"disabled"` keywords EMQX accepts in place of a number.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

// ---------------------------------------------------------------------------
// Scalars: one visitor for every "number or text" value
// ---------------------------------------------------------------------------

/// A value read from either a number or a string, with the reason it was refused.
pub(crate) trait FromScalar: Sized {
    /// What the value looks like, for error messages (`a duration like "15s"`).
    const EXPECTED: &'static str;
    /// Read a non-negative integer written without quotes or unit.
    fn from_u64(value: u64) -> Result<Self, String>;
    /// Read text (a unit value like `"15s"`, or a quoted number).
    fn from_text(text: &str) -> Result<Self, String>;
}

struct ScalarVisitor<T> {
    /// The keyword that reads as `None` (`"infinity"`, `"disabled"`), if any.
    keyword: Option<&'static str>,
    marker: PhantomData<T>,
}

impl<'de, T: FromScalar> Visitor<'de> for ScalarVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.keyword {
            Some(keyword) => write!(f, "\"{keyword}\" or {}", T::EXPECTED),
            None => f.write_str(T::EXPECTED),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        T::from_u64(value).map(Some).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::custom(format!(
                "invalid value {value}: must not be negative"
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        // A whole number written as `1e3` or `10.0`: accept it; anything else goes
        // through the text reader so `1.5` can be refused with the usual message.
        if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64 {
            return self.visit_u64(value as u64);
        }
        self.visit_str(&value.to_string())
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if let Some(keyword) = self.keyword {
            if text.trim().eq_ignore_ascii_case(keyword) {
                return Ok(None);
            }
        }
        T::from_text(text)
            .map(Some)
            .map_err(|error| match self.keyword {
                // The plain reader's message would not mention the keyword.
                Some(keyword) => E::custom(format!(
                    "invalid value {text:?} (expected \"{keyword}\" or {})",
                    T::EXPECTED
                )),
                None => E::custom(error),
            })
    }
}

/// Deserialize a plain `T` from a number or a string.
fn deserialize_scalar<'de, D: Deserializer<'de>, T: FromScalar>(d: D) -> Result<T, D::Error> {
    let visitor = ScalarVisitor::<T> {
        keyword: None,
        marker: PhantomData,
    };
    d.deserialize_any(visitor)?
        .ok_or_else(|| de::Error::custom("missing value"))
}

/// Deserialize `keyword` as `None`, anything else as `Some(T)`.
fn deserialize_keyword_or<'de, D: Deserializer<'de>, T: FromScalar>(
    d: D,
    keyword: &'static str,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(ScalarVisitor::<T> {
        keyword: Some(keyword),
        marker: PhantomData,
    })
}

/// `#[serde(with = "infinity_or")]` for `Option<T>`: `"infinity"` is `None`.
pub(crate) mod infinity_or {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: FromScalar>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        deserialize_keyword_or(d, "infinity")
    }

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => value.serialize(s),
            None => s.serialize_str("infinity"),
        }
    }
}

/// `#[serde(with = "disabled_or")]` for `Option<T>`: `"disabled"` is `None`.
pub(crate) mod disabled_or {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: FromScalar>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        deserialize_keyword_or(d, "disabled")
    }

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => value.serialize(s),
            None => s.serialize_str("disabled"),
        }
    }
}

/// `#[serde(with = "auto_or")]`: `"auto"` (None) or a value.
pub(crate) mod auto_or {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: FromScalar>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        deserialize_keyword_or(d, "auto")
    }

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => value.serialize(s),
            None => s.serialize_str("auto"),
        }
    }
}

/// `#[serde(with = "rate_or_infinity")]` for a per-second rate `Option<u64>`:
/// `"infinity"`, `1000` or `"1000/s"`.
pub(crate) mod rate_or_infinity {
    use super::*;

    struct PerSecond(u64);

    impl FromScalar for PerSecond {
        const EXPECTED: &'static str = "a rate like 1000 or \"1000/s\"";

        fn from_u64(value: u64) -> Result<Self, String> {
            Ok(PerSecond(value))
        }

        fn from_text(text: &str) -> Result<Self, String> {
            let trimmed = text.trim();
            let count = trimmed
                .strip_suffix("/s")
                .unwrap_or(trimmed)
                .trim()
                .parse::<u64>();
            count.map(PerSecond).map_err(|_| {
                format!("invalid rate {text:?} (expected \"infinity\", 1000 or \"1000/s\")")
            })
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(deserialize_keyword_or::<D, PerSecond>(d, "infinity")?.map(|rate| rate.0))
    }

    pub(crate) fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        infinity_or::serialize(value, s)
    }
}

macro_rules! integer_from_scalar {
    ($($ty:ty),*) => {$(
        impl FromScalar for $ty {
            const EXPECTED: &'static str = "a non-negative integer";

            fn from_u64(value: u64) -> Result<Self, String> {
                <$ty>::try_from(value).map_err(|_| {
                    format!("invalid value {value}: must be at most {}", <$ty>::MAX)
                })
            }

            fn from_text(text: &str) -> Result<Self, String> {
                match text.trim().parse::<u64>() {
                    Ok(value) => Self::from_u64(value),
                    Err(_) => Err(format!(
                        "invalid value {text:?} (expected an integer from 0 to {})",
                        <$ty>::MAX
                    )),
                }
            }
        }
    )*};
}

integer_from_scalar!(u16, u32, u64);

/// Split `"1.5 MB"` into a decimal number (mantissa, digits after the point) and the
/// unit that follows it. Returns `None` if the text does not start with a number.
fn split_number(text: &str) -> Option<((u128, u32), &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || number.ends_with('.') {
        return None;
    }
    // 30 digits keep `mantissa * unit` comfortably inside u128.
    if whole.len() + fraction.len() > 30 {
        return None;
    }
    let mantissa = format!("{whole}{fraction}").parse::<u128>().ok()?;
    let scale = u32::try_from(fraction.len()).ok()?;
    Some(((mantissa, scale), rest.trim_start()))
}

/// `mantissa / 10^scale * unit`, truncated toward zero.
fn scale_decimal((mantissa, scale): (u128, u32), unit: u128) -> Option<u128> {
    mantissa
        .checked_mul(unit)?
        .checked_div(10u128.checked_pow(scale)?)
}

// ---------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------

/// A length of time, written `"100ms"`, `"15s"`, `"30m"`, `"2h"`, `"1d"`, `"1w"`
/// (or combined, `"1h30m"`); a bare integer is milliseconds. Millisecond precision.
/// Serializes back to the largest whole unit, e.g. `"15s"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// No time at all (`"0s"`).
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Duration {
        Duration(std::time::Duration::from_millis(millis))
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// The value as a standard library duration.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// Whole milliseconds (saturating at `u64::MAX`).
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(value: std::time::Duration) -> Self {
        Duration(value)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(value: Duration) -> Self {
        value.0
    }
}

const DURATION_UNITS: [(&str, u64); 6] = [
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("invalid duration {text:?} (expected e.g. \"15s\", \"100ms\", \"2h\")");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        if rest.bytes().all(|b| b.is_ascii_digit()) {
            return rest
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| invalid());
        }
        let mut total_millis: u128 = 0;
        while !rest.is_empty() {
            let (number, after) = split_number(rest).ok_or_else(invalid)?;
            let unit_end = after
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(after.len());
            let unit = after[..unit_end].to_ascii_lowercase();
            let (_, unit_millis) = DURATION_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .ok_or_else(invalid)?;
            let millis = scale_decimal(number, u128::from(*unit_millis)).ok_or_else(invalid)?;
            total_millis = total_millis.checked_add(millis).ok_or_else(invalid)?;
            rest = after[unit_end..].trim_start();
        }
        u64::try_from(total_millis)
            .map(Duration::from_millis)
            .map_err(|_| invalid())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        let (name, unit) = DURATION_UNITS
            .iter()
            .find(|(_, unit)| millis.is_multiple_of(*unit))
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}{name}", millis / unit)
    }
}

impl FromScalar for Duration {
    const EXPECTED: &'static str = "a duration like \"15s\"";

    fn from_u64(value: u64) -> Result<Self, String> {
        Ok(Duration::from_millis(value))
    }

    fn from_text(text: &str) -> Result<Self, String> {
        text.parse()
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_scalar(d)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------------------
// ByteSize
// ---------------------------------------------------------------------------

/// A number of bytes, written `"512KB"`, `"1MB"`, `"1GB"` (1024-based like EMQX:
/// `"1MB"` is 1048576; units are case-insensitive, `KiB`-style spellings accepted);
/// a bare integer is bytes. Serializes back to the largest whole unit, e.g. `"1MB"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// A size of `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> ByteSize {
        ByteSize(bytes)
    }

    /// A size of `kb` kilobytes (1024 bytes each).
    pub const fn from_kb(kb: u64) -> ByteSize {
        ByteSize(kb * 1024)
    }

    /// A size of `mb` megabytes (1024 * 1024 bytes each).
    pub const fn from_mb(mb: u64) -> ByteSize {
        ByteSize(mb * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The size in bytes, saturating at `usize::MAX`.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

const SIZE_UNITS: [(&str, u64); 5] = [
    ("TB", 1 << 40),
    ("GB", 1 << 30),
    ("MB", 1 << 20),
    ("KB", 1 << 10),
    ("B", 1),
];

fn size_unit(name: &str) -> Option<u64> {
    let name = name.to_ascii_lowercase();
    let name = name
        .strip_suffix("ib")
        .or_else(|| name.strip_suffix('b'))
        .unwrap_or(&name);
    match name {
        "" => Some(1),
        "k" => Some(1 << 10),
        "m" => Some(1 << 20),
        "g" => Some(1 << 30),
        "t" => Some(1 << 40),
        _ => None,
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("invalid size {text:?} (expected e.g. \"1MB\")");
        let (number, unit) = split_number(text.trim()).ok_or_else(invalid)?;
        if unit.eq_ignore_ascii_case("ib") {
            return Err(invalid());
        }
        let unit = size_unit(unit).ok_or_else(invalid)?;
        let bytes = scale_decimal(number, u128::from(unit)).ok_or_else(invalid)?;
        u64::try_from(bytes).map(ByteSize).map_err(|_| invalid())
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        let (name, unit) = SIZE_UNITS
            .iter()
            .find(|(_, unit)| self.0.is_multiple_of(*unit))
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{name}", self.0 / unit)
    }
}

impl FromScalar for ByteSize {
    const EXPECTED: &'static str = "a size like \"1MB\"";

    fn from_u64(value: u64) -> Result<Self, String> {
        Ok(ByteSize(value))
    }

    fn from_text(text: &str) -> Result<Self, String> {
        text.parse()
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_scalar(d)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// ---------------------------------------------------------------------------
// Bind
// ---------------------------------------------------------------------------

/// A listen address: a port (`1883` or `":1883"`, meaning `0.0.0.0:1883`) or an
/// `"ip:port"` (`"127.0.0.1:1883"`, `"[::]:1883"`). Serializes as `"ip:port"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bind(pub SocketAddr);

impl Bind {
    /// All IPv4 interfaces on `port`.
    pub const fn any(port: u16) -> Bind {
        Bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
    }

    /// The socket address to listen on.
    pub const fn addr(self) -> SocketAddr {
        self.0
    }

    /// The port to listen on.
    pub const fn port(self) -> u16 {
        self.0.port()
    }
}

impl From<SocketAddr> for Bind {
    fn from(value: SocketAddr) -> Self {
        Bind(value)
    }
}

impl FromStr for Bind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let port = trimmed.strip_prefix(':').unwrap_or(trimmed);
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return port
                .parse::<u16>()
                .map(Bind::any)
                .map_err(|_| format!("invalid bind address {text:?}: port must be at most 65535"));
        }
        trimmed.parse::<SocketAddr>().map(Bind).map_err(|_| {
            format!(
                "invalid bind address {text:?} (expected a port like 1883 or \"ip:port\" like \"0.0.0.0:1883\")"
            )
        })
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromScalar for Bind {
    const EXPECTED: &'static str = "a port like 1883 or an address like \"0.0.0.0:1883\"";

    fn from_u64(value: u64) -> Result<Self, String> {
        u16::try_from(value)
            .map(Bind::any)
            .map_err(|_| format!("invalid bind address {value}: port must be at most 65535"))
    }

    fn from_text(text: &str) -> Result<Self, String> {
        text.parse()
    }
}

impl<'de> Deserialize<'de> for Bind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_scalar(d)
    }
}

impl Serialize for Bind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_emqx_spellings() {
        let cases = [
            ("15s", 15_000),
            ("100ms", 100),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("30m", 1_800_000),
            ("1h30m", 5_400_000),
            ("1.5s", 1_500),
            ("15 s", 15_000),
            ("15S", 15_000),
            ("250", 250),
            ("0s", 0),
        ];
        for (text, millis) in cases {
            assert_eq!(
                text.parse::<Duration>().unwrap().as_millis(),
                millis,
                "{text}"
            );
        }
    }

    #[test]
    fn durations_reject_garbage() {
        for text in ["", "s", "15x", "15sec", "1..5s", "-1s", "1.s"] {
            assert!(text.parse::<Duration>().is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn durations_display_in_largest_whole_unit() {
        assert_eq!(Duration::from_secs(15).to_string(), "15s");
        assert_eq!(Duration::from_secs(7200).to_string(), "2h");
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(Duration::ZERO.to_string(), "0s");
    }

    #[test]
    fn sizes_are_1024_based() {
        let cases = [
            ("1MB", 1 << 20),
            ("512KB", 512 << 10),
            ("1GB", 1 << 30),
            ("1mb", 1 << 20),
            ("64KiB", 64 << 10),
            ("1.5KB", 1536),
            ("100B", 100),
            ("100", 100),
            ("2 MB", 2 << 20),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>().unwrap().as_u64(), bytes, "{text}");
        }
        assert_eq!(ByteSize::from_mb(1).to_string(), "1MB");
        assert_eq!(ByteSize::from_bytes(1000).to_string(), "1000B");
    }

    #[test]
    fn sizes_reject_unknown_units() {
        for text in ["12XB", "MB", "1iB", "", "1.2.3MB"] {
            assert!(text.parse::<ByteSize>().is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn bind_accepts_port_and_addresses() {
        let any = |port| Bind::any(port).addr();
        assert_eq!("1883".parse::<Bind>().unwrap().addr(), any(1883));
        assert_eq!(":1883".parse::<Bind>().unwrap().addr(), any(1883));
        assert_eq!(
            "127.0.0.1:1883".parse::<Bind>().unwrap().to_string(),
            "127.0.0.1:1883"
        );
        assert_eq!(
            "[::]:1883".parse::<Bind>().unwrap().to_string(),
            "[::]:1883"
        );
        assert!("localhost:1883".parse::<Bind>().is_err());
        assert!("70000".parse::<Bind>().is_err());
    }
}
