//! The common model every format converts to and from: typed [`Value`]s on [`Path`]s.
//!
//! A [`Record`] is one `(Path, Value)`; a payload is a `Vec<Record>`. SenML and OMA JSON
//! can also carry a measurement time, kept in [`TimedRecord`].

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::ValueError;
use crate::path::Path;

/// The data type of a resource, as an object definition declares it (LwM2M 1.1 Core
/// Appendix C). TLV and plain text do not say which type a value is; the caller does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// UTF-8 string.
    String,
    /// Signed integer, up to 64 bits.
    Integer,
    /// Unsigned integer, up to 64 bits (LwM2M 1.1).
    UnsignedInteger,
    /// IEEE 754 float, 32 or 64 bits.
    Float,
    /// Boolean.
    Boolean,
    /// Opaque octets.
    Opaque,
    /// Unix time in seconds, a signed integer.
    Time,
    /// Object link: object id and object instance id.
    ObjLink,
    /// CoRE link format string (LwM2M 1.1).
    CoreLink,
    /// No value (executable resources).
    None,
}

impl ResourceType {
    /// The type named as in object definition XML and EMQX commands (`"Integer"`,
    /// `"Objlnk"`, `"Unsigned Integer"`, `"Corelnk"`, …), case-insensitively.
    pub fn from_name(name: &str) -> Option<ResourceType> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "string" => ResourceType::String,
            "integer" => ResourceType::Integer,
            "unsigned integer" | "unsignedinteger" => ResourceType::UnsignedInteger,
            "float" => ResourceType::Float,
            "boolean" => ResourceType::Boolean,
            "opaque" => ResourceType::Opaque,
            "time" => ResourceType::Time,
            "objlnk" => ResourceType::ObjLink,
            "corelnk" => ResourceType::CoreLink,
            "none" | "" => ResourceType::None,
            _ => return None,
        })
    }

    /// The type's name as object definition XML spells it (`"Unsigned Integer"`,
    /// `"Objlnk"`, …); executable resources have the empty name.
    pub fn oma_name(self) -> &'static str {
        match self {
            ResourceType::String => "String",
            ResourceType::Integer => "Integer",
            ResourceType::UnsignedInteger => "Unsigned Integer",
            ResourceType::Float => "Float",
            ResourceType::Boolean => "Boolean",
            ResourceType::Opaque => "Opaque",
            ResourceType::Time => "Time",
            ResourceType::ObjLink => "Objlnk",
            ResourceType::CoreLink => "Corelnk",
            ResourceType::None => "",
        }
    }
}

/// An object link value (`Objlnk`): an object id and an object instance id. `65535:65535`
/// is the "null" link, so all 16-bit values are allowed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjLink {
    /// The object id.
    pub object: u16,
    /// The object instance id.
    pub instance: u16,
}

impl fmt::Display for ObjLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object, self.instance)
    }
}

impl FromStr for ObjLink {
    type Err = ValueError;

    /// Parses `"3:0"`.
    fn from_str(text: &str) -> Result<ObjLink, ValueError> {
        let bad = || ValueError::BadObjLink(truncate(text));
        let (object, instance) = text.split_once(':').ok_or_else(bad)?;
        let id = |part: &str| -> Result<u16, ValueError> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        Ok(ObjLink {
            object: id(object)?,
            instance: id(instance)?,
        })
    }
}

/// A typed resource value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// UTF-8 string.
    String(String),
    /// Signed integer.
    Integer(i64),
    /// Unsigned integer (LwM2M 1.1).
    UnsignedInteger(u64),
    /// Float.
    Float(f64),
    /// Boolean.
    Boolean(bool),
    /// Opaque octets.
    Opaque(Bytes),
    /// Unix time in seconds.
    Time(i64),
    /// Object link.
    ObjLink(ObjLink),
    /// CoRE link format string.
    CoreLink(String),
    /// No value: a name without a value (SenML read-composite requests, executables).
    None,
}

impl Value {
    /// The resource type of this value.
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Value::String(_) => ResourceType::String,
            Value::Integer(_) => ResourceType::Integer,
            Value::UnsignedInteger(_) => ResourceType::UnsignedInteger,
            Value::Float(_) => ResourceType::Float,
            Value::Boolean(_) => ResourceType::Boolean,
            Value::Opaque(_) => ResourceType::Opaque,
            Value::Time(_) => ResourceType::Time,
            Value::ObjLink(_) => ResourceType::ObjLink,
            Value::CoreLink(_) => ResourceType::CoreLink,
            Value::None => ResourceType::None,
        }
    }

    /// A short name of the variant, for error messages.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Value::String(_) => "String",
            Value::Integer(_) => "Integer",
            Value::UnsignedInteger(_) => "UnsignedInteger",
            Value::Float(_) => "Float",
            Value::Boolean(_) => "Boolean",
            Value::Opaque(_) => "Opaque",
            Value::Time(_) => "Time",
            Value::ObjLink(_) => "Objlnk",
            Value::CoreLink(_) => "Corelnk",
            Value::None => "None",
        }
    }
}

/// One resource (or resource instance) value: the common model of every format.
pub type Record = (Path, Value);

/// A record with the measurement time SenML and OMA JSON can carry: the resolved
/// `bt + t` in seconds. Per RFC 8428 §4.5.3 a resolved time below 2**28 is relative to
/// "now"; this sans-IO codec leaves that to the caller, who knows the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedRecord {
    /// The resource path.
    pub path: Path,
    /// The value.
    pub value: Value,
    /// The resolved time, when the record or its base carried one.
    pub time: Option<f64>,
}

impl TimedRecord {
    /// The record without its time.
    pub fn into_record(self) -> Record {
        (self.path, self.value)
    }
}

impl From<Record> for TimedRecord {
    fn from((path, value): Record) -> TimedRecord {
        TimedRecord {
            path,
            value,
            time: None,
        }
    }
}

/// Drops the times of timed records.
pub fn untimed(records: Vec<TimedRecord>) -> Vec<Record> {
    records.into_iter().map(TimedRecord::into_record).collect()
}

/// Converts a value decoded without its object definition (OMA JSON, SenML, EMQX JSON)
/// to the resource's declared type: numbers between integer, unsigned, time and float
/// when the number is representable exactly; strings to opaque (base64), object links
/// and core links. [`Value::None`] stays `None`.
pub fn retype(value: Value, ty: ResourceType) -> Result<Value, ValueError> {
    if value.resource_type() == ty || value == Value::None {
        return Ok(value);
    }
    let wrong = |value: &Value| ValueError::WrongType {
        expected: type_name(ty),
        found: value.kind_name(),
    };
    let as_i128 = |value: &Value| -> Option<i128> {
        match *value {
            Value::Integer(n) | Value::Time(n) => Some(n.into()),
            Value::UnsignedInteger(n) => Some(n.into()),
            // Exactly integral floats within ±2^63 only.
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 => {
                Some(f as i128)
            }
            _ => None,
        }
    };
    Ok(match (ty, &value) {
        (ResourceType::Integer | ResourceType::Time, _) => {
            let n = as_i128(&value)
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| wrong(&value))?;
            if ty == ResourceType::Integer {
                Value::Integer(n)
            } else {
                Value::Time(n)
            }
        }
        (ResourceType::UnsignedInteger, _) => Value::UnsignedInteger(
            as_i128(&value)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| wrong(&value))?,
        ),
        (ResourceType::Float, Value::Integer(n) | Value::Time(n)) => Value::Float(*n as f64),
        (ResourceType::Float, Value::UnsignedInteger(n)) => Value::Float(*n as f64),
        (ResourceType::Opaque, Value::String(s)) => Value::Opaque(Bytes::from(
            crate::base64::decode(s, crate::base64::Alphabet::Standard)?,
        )),
        (ResourceType::ObjLink, Value::String(s)) => Value::ObjLink(s.parse()?),
        (ResourceType::CoreLink, Value::String(s)) => Value::CoreLink(s.clone()),
        (ResourceType::String, Value::CoreLink(s)) => Value::String(s.clone()),
        _ => return Err(wrong(&value)),
    })
}

fn type_name(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::String => "String",
        ResourceType::Integer => "Integer",
        ResourceType::UnsignedInteger => "UnsignedInteger",
        ResourceType::Float => "Float",
        ResourceType::Boolean => "Boolean",
        ResourceType::Opaque => "Opaque",
        ResourceType::Time => "Time",
        ResourceType::ObjLink => "Objlnk",
        ResourceType::CoreLink => "Corelnk",
        ResourceType::None => "None",
    }
}

/// At most 64 characters of `text`, for error messages.
pub(crate) fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_links_parse_and_format() {
        let link: ObjLink = "3:0".parse().unwrap();
        assert_eq!(
            link,
            ObjLink {
                object: 3,
                instance: 0
            }
        );
        assert_eq!(link.to_string(), "3:0");
        assert_eq!(
            "65535:65535".parse::<ObjLink>().unwrap().to_string(),
            "65535:65535"
        );
        for bad in [
            "", "3", "3:", ":0", "3:0:1", "-1:0", "65536:0", "a:b", "+3:0",
        ] {
            assert!(
                matches!(bad.parse::<ObjLink>(), Err(ValueError::BadObjLink(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_are_retyped_to_the_declared_type_when_exact() {
        assert_eq!(
            retype(Value::Integer(5), ResourceType::Time),
            Ok(Value::Time(5))
        );
        assert_eq!(
            retype(Value::Integer(5), ResourceType::UnsignedInteger),
            Ok(Value::UnsignedInteger(5))
        );
        assert!(retype(Value::Integer(-5), ResourceType::UnsignedInteger).is_err());
        assert_eq!(
            retype(Value::Float(3.0), ResourceType::Integer),
            Ok(Value::Integer(3))
        );
        assert!(retype(Value::Float(3.5), ResourceType::Integer).is_err());
        assert!(retype(Value::Float(1e19), ResourceType::Integer).is_err());
        assert_eq!(
            retype(Value::Integer(2), ResourceType::Float),
            Ok(Value::Float(2.0))
        );
        assert_eq!(
            retype(Value::String("AQI=".into()), ResourceType::Opaque),
            Ok(Value::Opaque(Bytes::from_static(&[1, 2])))
        );
        assert_eq!(
            retype(Value::String("3:0".into()), ResourceType::ObjLink),
            Ok(Value::ObjLink(ObjLink {
                object: 3,
                instance: 0
            }))
        );
        assert_eq!(retype(Value::None, ResourceType::Integer), Ok(Value::None));
        assert!(retype(Value::Boolean(true), ResourceType::Integer).is_err());
        assert!(retype(Value::String("1".into()), ResourceType::Integer).is_err());
    }

    #[test]
    fn resource_types_are_named_as_in_object_definitions() {
        assert_eq!(
            ResourceType::from_name("Integer"),
            Some(ResourceType::Integer)
        );
        assert_eq!(
            ResourceType::from_name("Objlnk"),
            Some(ResourceType::ObjLink)
        );
        assert_eq!(
            ResourceType::from_name("Unsigned Integer"),
            Some(ResourceType::UnsignedInteger)
        );
        assert_eq!(
            ResourceType::from_name("Corelnk"),
            Some(ResourceType::CoreLink)
        );
        assert_eq!(ResourceType::from_name("Widget"), None);
        assert_eq!(Value::Time(1).resource_type(), ResourceType::Time);
    }
}
