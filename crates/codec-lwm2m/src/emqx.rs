//! The JSON shapes EMQX's LwM2M gateway exchanges on its translator topics (see the
//! gateway reference §5.4), as pure functions over records.
//!
//! * Read and observe responses put `[{"path":"/3/0/0","value":…}, …]` in
//!   `data.content`: strings and core links as strings, integers, unsigned integers and
//!   times as JSON integers, floats as numbers, booleans as booleans, opaque values as
//!   base64 (standard alphabet, padded), object links as `"3:0"`, no value as `null`.
//! * Write and create commands carry `{"path":"/3/0/13","type":"Integer","value":…}` or
//!   `{"basePath":"/3/0","content":[{"path":"13","type":…,"value":…},…]}`, with `type`
//!   one of `Integer`, `Float`, `Time`, `String`, `Boolean`, `Opaque`, `Objlnk`.
//!
//! Where EMQX's translator has bugs, this does what its documentation says instead:
//! integers are written signed (EMQX writes 128 unsigned, which reads back as −128), an
//! `Integer` with a fractional value is refused (EMQX sends an 8-octet float), and a
//! malformed value is an error rather than a crashed channel.

use serde_json::{Map, Value as Json};

use crate::base64::{self, Alphabet};
use crate::error::{EmqxJsonError, ValueError};
use crate::path::Path;
use crate::value::{Record, ResourceType, Value};

/// The `data.content` list of a read or observe response.
pub fn emqx_content(records: &[Record]) -> Json {
    Json::Array(
        records
            .iter()
            .map(|(path, value)| {
                let mut entry = Map::new();
                entry.insert("path".into(), Json::String(path.to_string()));
                entry.insert("value".into(), emqx_value(value));
                Json::Object(entry)
            })
            .collect(),
    )
}

/// One value as EMQX puts it in `content` (a non-finite float becomes `null`).
pub fn emqx_value(value: &Value) -> Json {
    match value {
        Value::String(s) | Value::CoreLink(s) => Json::String(s.clone()),
        Value::Integer(n) | Value::Time(n) => Json::from(*n),
        Value::UnsignedInteger(n) => Json::from(*n),
        Value::Float(f) => Json::from(*f),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Opaque(bytes) => Json::String(base64::encode(bytes, Alphabet::Standard, true)),
        Value::ObjLink(link) => Json::String(link.to_string()),
        Value::None => Json::Null,
    }
}

/// A write or create command's `data`, as records.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteCommand {
    /// The request path: `path` of a single write, `basePath` of a batch (2 levels ⇒
    /// POST, 3 levels ⇒ PUT for a write; the object for a create).
    pub base: Path,
    /// A `?query` suffix of the path, without the `?`, which becomes Uri-Query options.
    pub query: Option<String>,
    /// The values, with full paths, in command order.
    pub records: Vec<Record>,
}

/// Converts a write (single or batch) or create command's `data` to records.
pub fn parse_write_command(data: &Json) -> Result<WriteCommand, EmqxJsonError> {
    let Json::Object(data) = data else {
        return Err(EmqxJsonError::Shape("data is not an object"));
    };
    if let Some(content) = data.get("content") {
        let Some(Json::String(base_text)) = data.get("basePath") else {
            return Err(EmqxJsonError::Shape("basePath is missing or not a string"));
        };
        let (base_text, query) = split_query(base_text);
        let base = parse_path(base_text)?;
        let Json::Array(items) = content else {
            return Err(EmqxJsonError::Shape("content is not an array"));
        };
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let Json::Object(item) = item else {
                return Err(EmqxJsonError::Shape("a content item is not an object"));
            };
            let relative = string_member(item, "path")?;
            let path = join(&base, relative)?;
            records.push((path, typed_value(item, &path)?));
        }
        return Ok(WriteCommand {
            base,
            query,
            records,
        });
    }
    let (text, query) = split_query(string_member(data, "path")?);
    let path = parse_path(text)?;
    let value = typed_value(data, &path)?;
    Ok(WriteCommand {
        base: path,
        query,
        records: vec![(path, value)],
    })
}

fn string_member<'a>(
    map: &'a Map<String, Json>,
    key: &'static str,
) -> Result<&'a str, EmqxJsonError> {
    match map.get(key) {
        Some(Json::String(s)) => Ok(s),
        _ => Err(EmqxJsonError::Shape(match key {
            "path" => "path is missing or not a string",
            "type" => "type is missing or not a string",
            _ => "a member is missing or not a string",
        })),
    }
}

/// Splits `"/3/0?pmin=10"` into the path and the query.
fn split_query(text: &str) -> (&str, Option<String>) {
    match text.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (text, None),
    }
}

fn parse_path(text: &str) -> Result<Path, EmqxJsonError> {
    Path::parse(text).map_err(|source| EmqxJsonError::Path {
        text: crate::value::truncate(text),
        source,
    })
}

/// `base` extended by the ids of a relative path (`"13"`, `"/6/0"`, `"0/1"`); empty
/// segments are skipped, as EMQX does.
fn join(base: &Path, relative: &str) -> Result<Path, EmqxJsonError> {
    let mut path = *base;
    for segment in relative.split('/').filter(|s| !s.is_empty()) {
        let id = Path::parse(&format!("/{segment}")).and_then(|p| {
            if p.depth() == 1 {
                Ok(p.object_id())
            } else {
                Err(crate::error::PathError::BadSegment(segment.to_owned()))
            }
        });
        path = id
            .and_then(|id| path.child(id))
            .map_err(|source| EmqxJsonError::Path {
                text: crate::value::truncate(relative),
                source,
            })?;
    }
    Ok(path)
}

fn typed_value(item: &Map<String, Json>, path: &Path) -> Result<Value, EmqxJsonError> {
    let type_name = string_member(item, "type")?;
    let ty = ResourceType::from_name(type_name)
        .filter(|ty| *ty != ResourceType::None)
        .ok_or_else(|| EmqxJsonError::UnknownType(crate::value::truncate(type_name)))?;
    let Some(value) = item.get("value") else {
        return Err(EmqxJsonError::Shape("value is missing"));
    };
    emqx_write_value(ty, value).map_err(|source| EmqxJsonError::Value {
        path: *path,
        source,
    })
}

/// Converts a command's `value` to a value of type `ty`: numbers as JSON numbers or
/// decimal strings, booleans as JSON booleans or `"true"`/`"false"`, opaque as base64,
/// object links as `"3:0"`.
pub fn emqx_write_value(ty: ResourceType, value: &Json) -> Result<Value, ValueError> {
    let found = match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    let wrong = |expected: &'static str| ValueError::WrongType { expected, found };
    let bad_text = |text: &str| ValueError::BadText {
        ty,
        text: crate::value::truncate(text),
    };
    Ok(match (ty, value) {
        (ResourceType::String, Json::String(s)) => Value::String(s.clone()),
        (ResourceType::CoreLink, Json::String(s)) => Value::CoreLink(s.clone()),
        (ResourceType::Integer | ResourceType::Time, _) => {
            let n = match value {
                Json::Number(n) => n.as_i64().ok_or(wrong("integer"))?,
                Json::String(s) => s.trim().parse().map_err(|_| bad_text(s))?,
                _ => return Err(wrong("integer")),
            };
            if ty == ResourceType::Integer {
                Value::Integer(n)
            } else {
                Value::Time(n)
            }
        }
        (ResourceType::UnsignedInteger, _) => Value::UnsignedInteger(match value {
            Json::Number(n) => n.as_u64().ok_or(wrong("unsigned integer"))?,
            Json::String(s) => s.trim().parse().map_err(|_| bad_text(s))?,
            _ => return Err(wrong("unsigned integer")),
        }),
        (ResourceType::Float, _) => {
            let f = match value {
                Json::Number(n) => n.as_f64().ok_or(wrong("number"))?,
                Json::String(s) => crate::text::decode_text(s.trim().as_bytes(), ty)
                    .ok()
                    .and_then(|v| match v {
                        Value::Float(f) => Some(f),
                        _ => None,
                    })
                    .ok_or_else(|| bad_text(s))?,
                _ => return Err(wrong("number")),
            };
            if !f.is_finite() {
                return Err(bad_text(&f.to_string()));
            }
            Value::Float(f)
        }
        (ResourceType::Boolean, Json::Bool(b)) => Value::Boolean(*b),
        (ResourceType::Boolean, Json::String(s)) => match s.as_str() {
            "true" | "1" => Value::Boolean(true),
            "false" | "0" => Value::Boolean(false),
            _ => return Err(bad_text(s)),
        },
        (ResourceType::Opaque, Json::String(s)) => {
            Value::Opaque(base64::decode(s, Alphabet::Standard)?.into())
        }
        (ResourceType::ObjLink, Json::String(s)) => Value::ObjLink(s.parse()?),
        (ResourceType::String | ResourceType::CoreLink, _) => return Err(wrong("string")),
        (ResourceType::Boolean, _) => return Err(wrong("boolean or \"true\"/\"false\"")),
        (ResourceType::Opaque, _) => return Err(wrong("base64 string")),
        (ResourceType::ObjLink, _) => return Err(wrong("\"ObjectId:InstanceId\" string")),
        (ResourceType::None, _) => return Err(wrong("no value")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ObjLink;
    use bytes::Bytes;
    use serde_json::json;

    fn path(text: &str) -> Path {
        text.parse().unwrap()
    }

    #[test]
    fn read_content_has_emqx_shape() {
        let records = vec![
            (path("/3/0/0"), Value::String("Open Mobile Alliance".into())),
            (path("/3/0/6/0"), Value::Integer(1)),
            (path("/3/0/7/0"), Value::Float(3.5)),
            (path("/3/0/13"), Value::Time(1_367_491_215)),
            (path("/3/0/2"), Value::Boolean(true)),
            (
                path("/5/0/0"),
                Value::Opaque(Bytes::from_static(&[1, 2, 3, 4, 5])),
            ),
            (
                path("/3/0/22"),
                Value::ObjLink(ObjLink {
                    object: 3,
                    instance: 0,
                }),
            ),
            (path("/3/0/4"), Value::None),
        ];
        assert_eq!(
            emqx_content(&records),
            json!([
                {"path": "/3/0/0", "value": "Open Mobile Alliance"},
                {"path": "/3/0/6/0", "value": 1},
                {"path": "/3/0/7/0", "value": 3.5},
                {"path": "/3/0/13", "value": 1367491215},
                {"path": "/3/0/2", "value": true},
                {"path": "/5/0/0", "value": "AQIDBAU="},
                {"path": "/3/0/22", "value": "3:0"},
                {"path": "/3/0/4", "value": null},
            ])
        );
    }

    #[test]
    fn a_single_write_becomes_one_record() {
        let command =
            parse_write_command(&json!({"path": "/3/0/13", "type": "Integer", "value": 128}))
                .unwrap();
        assert_eq!(
            command,
            WriteCommand {
                base: path("/3/0/13"),
                query: None,
                records: vec![(path("/3/0/13"), Value::Integer(128))],
            }
        );
        let command = parse_write_command(
            &json!({"path": "/3/0/14?pmin=1", "type": "String", "value": "+08:00"}),
        )
        .unwrap();
        assert_eq!(command.query.as_deref(), Some("pmin=1"));
        assert_eq!(command.records[0].1, Value::String("+08:00".into()));
    }

    #[test]
    fn a_batch_write_joins_base_path_and_item_paths() {
        let command = parse_write_command(&json!({
            "basePath": "/3/0",
            "content": [
                {"path": "13", "type": "Time", "value": "1367491215"},
                {"path": "/6/0", "type": "Integer", "value": "-5"},
                {"path": "1", "type": "Float", "value": 1.5},
                {"path": "2", "type": "Float", "value": "2.25"},
                {"path": "3", "type": "Boolean", "value": "false"},
                {"path": "4", "type": "Boolean", "value": true},
                {"path": "5", "type": "Opaque", "value": "AQI="},
                {"path": "7", "type": "Objlnk", "value": "1:2"},
            ]
        }))
        .unwrap();
        assert_eq!(command.base, path("/3/0"));
        assert_eq!(
            command.records,
            vec![
                (path("/3/0/13"), Value::Time(1_367_491_215)),
                (path("/3/0/6/0"), Value::Integer(-5)),
                (path("/3/0/1"), Value::Float(1.5)),
                (path("/3/0/2"), Value::Float(2.25)),
                (path("/3/0/3"), Value::Boolean(false)),
                (path("/3/0/4"), Value::Boolean(true)),
                (path("/3/0/5"), Value::Opaque(Bytes::from_static(&[1, 2]))),
                (
                    path("/3/0/7"),
                    Value::ObjLink(ObjLink {
                        object: 1,
                        instance: 2
                    })
                ),
            ]
        );
        let create = parse_write_command(&json!({
            "basePath": "/5", "content": [{"path": "0/1", "type": "String", "value": "coap://x"}]
        }))
        .unwrap();
        assert_eq!(create.records[0].0, path("/5/0/1"));
    }

    #[test]
    fn malformed_commands_are_refused() {
        for bad in [
            json!("x"),
            json!({"type": "Integer", "value": 1}),
            json!({"path": "/3/0/13", "value": 1}),
            json!({"path": "/3/0/13", "type": "Integer"}),
            json!({"path": "/3/0/13", "type": "Widget", "value": 1}),
            json!({"path": "/3/0/13", "type": "None", "value": 1}),
            json!({"path": "3/0/13", "type": "Integer", "value": 1}),
            json!({"path": "/3/0/13", "type": "Integer", "value": 1.5}),
            json!({"path": "/3/0/13", "type": "Integer", "value": "1.5"}),
            json!({"path": "/3/0/13", "type": "Integer", "value": true}),
            json!({"path": "/3/0/13", "type": "String", "value": 1}),
            json!({"path": "/3/0/13", "type": "Boolean", "value": "yes"}),
            json!({"path": "/3/0/13", "type": "Opaque", "value": "!!"}),
            json!({"path": "/3/0/13", "type": "Objlnk", "value": "1"}),
            json!({"path": "/3/0/13", "type": "Float", "value": "NaN"}),
            json!({"basePath": "/3/0", "content": {}}),
            json!({"basePath": "/3/0", "content": [{"path": "x", "type": "Integer", "value": 1}]}),
            json!({"basePath": "/3/0/1/2", "content": [{"path": "1", "type": "Integer", "value": 1}]}),
            json!({"content": []}),
        ] {
            assert!(parse_write_command(&bad).is_err(), "{bad}");
        }
    }
}
