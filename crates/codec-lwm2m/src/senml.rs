//! SenML (RFC 8428) as LwM2M 1.1 uses it (Core §7.4.4 SenML JSON, §7.4.5 SenML CBOR):
//! the rules both representations share. Each representation parses its records into
//! [`Fields`]; [`resolve`] applies the base fields and turns them into records.
//!
//! * The name is `bn + n`, plain concatenation (RFC 8428 §4.5.1); a base name holds for
//!   the following records until another replaces it. The name must be an LwM2M path.
//! * The time is `bt + t` (§4.5.3); `None` when neither is present. A resolved time
//!   below 2**28 is relative to "now" — left to the caller, who has the clock.
//! * `bv` is added to each later `v` (§4.5.2): integers stay integers when the sum fits,
//!   otherwise the sum is a float.
//! * Values: `v` number, `vs` string, `vb` boolean, `vd` data (opaque), `vlo` object link
//!   (LwM2M's extension, `"3:0"`). A record may have none (a read-composite request
//!   names paths only), never two.
//! * `bver` above 10 and unknown fields ending in `_` (must-understand, §4.4) are
//!   refused; other unknown fields, units and sums are ignored.
//! * NaN and infinities are refused: JSON cannot carry them, so CBOR may not either.

use crate::error::SenmlError;
use crate::path::Path;
use crate::value::{TimedRecord, Value};

/// The SenML version this crate implements (RFC 8428 §4.4).
pub const SENML_VERSION: i64 = 10;

/// The fields of one record that LwM2M uses, as parsed from either representation.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub base_name: Option<String>,
    pub base_time: Option<f64>,
    pub base_value: Option<Value>,
    pub base_version: Option<i64>,
    pub name: Option<String>,
    pub time: Option<f64>,
    /// `v` as a number value (Integer, UnsignedInteger or Float).
    pub number: Option<Value>,
    /// `vs`, `vb`, `vd` or `vlo`.
    pub other: Option<Value>,
}

impl Fields {
    /// Sets a value field; a second one is an error.
    pub fn set_value(
        &mut self,
        record: usize,
        value: Value,
        number: bool,
    ) -> Result<(), SenmlError> {
        if self.number.is_some() || self.other.is_some() {
            return Err(SenmlError::SeveralValues(record));
        }
        if number {
            self.number = Some(value);
        } else {
            self.other = Some(value);
        }
        Ok(())
    }
}

/// Resolves parsed records into timed records.
pub(crate) fn resolve(pack: Vec<Fields>) -> Result<Vec<TimedRecord>, SenmlError> {
    let mut base_name = String::new();
    let mut base_time: Option<f64> = None;
    let mut base_value: Option<Value> = None;
    let mut records = Vec::with_capacity(pack.len());
    for (index, fields) in pack.into_iter().enumerate() {
        if let Some(version) = fields.base_version {
            if version > SENML_VERSION {
                return Err(SenmlError::Version {
                    record: index,
                    version,
                });
            }
        }
        if let Some(bn) = fields.base_name {
            base_name = bn;
        }
        if let Some(bt) = fields.base_time {
            base_time = Some(bt);
        }
        if let Some(bv) = fields.base_value {
            base_value = Some(bv);
        }
        let name = format!("{base_name}{}", fields.name.as_deref().unwrap_or(""));
        if name.is_empty() {
            return Err(SenmlError::MissingName(index));
        }
        let path = Path::parse(&name).map_err(|source| SenmlError::Name {
            record: index,
            name: crate::value::truncate(&name),
            source,
        })?;
        let time = match (base_time, fields.time) {
            (None, None) => None,
            (bt, t) => Some(bt.unwrap_or(0.0) + t.unwrap_or(0.0)),
        };
        if time.is_some_and(|t| !t.is_finite()) {
            return Err(SenmlError::NotFinite(index));
        }
        let value = match (fields.number, fields.other) {
            (Some(number), _) => match &base_value {
                Some(base) => add(&number, base).ok_or(SenmlError::NotFinite(index))?,
                None => number,
            },
            (None, Some(other)) => other,
            (None, None) => Value::None,
        };
        records.push(TimedRecord { path, value, time });
    }
    Ok(records)
}

/// `v + bv`: exact for integers that fit, float otherwise; `None` if not finite.
fn add(value: &Value, base: &Value) -> Option<Value> {
    let exact = |v: &Value| match *v {
        Value::Integer(n) => Some(i128::from(n)),
        Value::UnsignedInteger(n) => Some(i128::from(n)),
        _ => None,
    };
    let float = |v: &Value| match *v {
        Value::Integer(n) => n as f64,
        Value::UnsignedInteger(n) => n as f64,
        Value::Float(f) => f,
        _ => f64::NAN,
    };
    if let (Some(a), Some(b)) = (exact(value), exact(base)) {
        let sum = a + b;
        return i64::try_from(sum)
            .map(Value::Integer)
            .or_else(|_| u64::try_from(sum).map(Value::UnsignedInteger))
            .ok();
    }
    let sum = float(value) + float(base);
    sum.is_finite().then_some(Value::Float(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(bn: Option<&str>, n: Option<&str>) -> Fields {
        Fields {
            base_name: bn.map(str::to_owned),
            name: n.map(str::to_owned),
            ..Fields::default()
        }
    }

    #[test]
    fn base_names_concatenate_and_persist() {
        let records = resolve(vec![
            named(Some("/3/0/"), Some("0")),
            named(None, Some("1")),
            named(Some("/4/0"), None),
            named(Some(""), Some("/5/0/1")),
        ])
        .unwrap();
        let paths: Vec<String> = records.iter().map(|r| r.path.to_string()).collect();
        assert_eq!(paths, ["/3/0/0", "/3/0/1", "/4/0", "/5/0/1"]);
        assert!(records
            .iter()
            .all(|r| r.value == Value::None && r.time.is_none()));
    }

    #[test]
    fn names_must_be_present_and_be_paths() {
        assert_eq!(
            resolve(vec![named(None, None)]),
            Err(SenmlError::MissingName(0))
        );
        assert!(matches!(
            resolve(vec![named(Some("/3/0"), Some("1"))]),
            Err(SenmlError::Name { record: 0, .. })
        ));
        assert!(matches!(
            resolve(vec![named(None, Some("urn:dev:ow:10e2073a01080063"))]),
            Err(SenmlError::Name { .. })
        ));
    }

    #[test]
    fn base_time_and_base_value_resolve() {
        let mut first = named(Some("/3303/0/"), Some("5700"));
        first.base_time = Some(1000.0);
        first.base_value = Some(Value::Integer(10));
        first.number = Some(Value::Integer(5));
        first.time = Some(-5.0);
        let mut second = named(None, Some("5601"));
        second.number = Some(Value::Float(0.5));
        let mut third = named(None, Some("5602"));
        third.other = Some(Value::String("x".into()));
        let records = resolve(vec![first, second, third]).unwrap();
        assert_eq!(records[0].value, Value::Integer(15));
        assert_eq!(records[0].time, Some(995.0));
        assert_eq!(records[1].value, Value::Float(10.5));
        assert_eq!(records[1].time, Some(1000.0));
        assert_eq!(records[2].value, Value::String("x".into()));
    }

    #[test]
    fn overflowing_resolution_is_refused() {
        let mut record = named(Some("/1/0/"), Some("1"));
        record.base_value = Some(Value::UnsignedInteger(u64::MAX));
        record.number = Some(Value::Integer(1));
        assert_eq!(resolve(vec![record]), Err(SenmlError::NotFinite(0)));
        let mut record = named(Some("/1/0/"), Some("1"));
        record.base_time = Some(f64::MAX);
        record.time = Some(f64::MAX);
        assert_eq!(resolve(vec![record]), Err(SenmlError::NotFinite(0)));
        let mut record = named(Some("/1/0/"), Some("1"));
        record.base_version = Some(11);
        assert!(matches!(
            resolve(vec![record]),
            Err(SenmlError::Version { version: 11, .. })
        ));
    }
}
