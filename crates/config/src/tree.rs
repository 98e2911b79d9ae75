//! The untyped layer between HOCON text and the typed [`Config`](crate::Config):
//! built-in defaults, then the file, then `JUNCTION_*` environment variables, merged
//! into one tree the way EMQX layers its config, before serde reads it.

use crate::error::ConfigError;
use crate::listener::{ListenerKind, DEFAULT_LISTENER_NAME};
use hocon::{HoconValue, ScalarType, ScalarValue};
use indexmap::IndexMap;
use std::collections::HashMap;

/// Prefix of environment variables that override config keys.
pub(crate) const ENV_PREFIX: &str = "JUNCTION_";

/// Separator between key segments in an environment variable name.
const ENV_SEPARATOR: &str = "__";

pub(crate) type Object = IndexMap<String, HoconValue>;

/// A key set by an environment variable, so errors about it can name the variable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvOrigin {
    key_path: String,
    variable: String,
}

/// The top-level object of a parsed document.
pub(crate) fn root_object(config: &hocon::Config) -> Object {
    config
        .keys()
        .into_iter()
        .filter_map(|key| {
            // Quote the key so a `.` inside it is not read as a path separator.
            let quoted = format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""));
            config
                .get(&quoted)
                .map(|value| (key.to_string(), value.clone()))
        })
        .collect()
}

/// The built-in layer under the file: the listeners that exist unless disabled.
pub(crate) fn defaults() -> Object {
    let one_default = || {
        HoconValue::Object(Object::from([(
            DEFAULT_LISTENER_NAME.to_string(),
            HoconValue::Object(Object::new()),
        )]))
    };
    let listeners = Object::from([
        (ListenerKind::Tcp.as_str().to_string(), one_default()),
        (ListenerKind::Ws.as_str().to_string(), one_default()),
    ]);
    Object::from([("listeners".to_string(), HoconValue::Object(listeners))])
}

/// Merge `over` into `base`: objects merge key by key, anything else replaces.
pub(crate) fn merge_into(base: &mut Object, over: Object) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(HoconValue::Object(base_inner)), HoconValue::Object(over_inner)) => {
                merge_into(base_inner, over_inner);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Render a key path the way errors show it: `a.b.c`, quoting keys that are not
/// plain identifiers (`mqueue_priorities."t/1"`).
pub(crate) fn render_path<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    segments
        .into_iter()
        .map(|segment| {
            let bare = !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if bare {
                segment.to_string()
            } else {
                format!("{segment:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Top-level config sections. A `JUNCTION_*` variable whose first segment is none of
/// these (`JUNCTION_BIN`, `JUNCTION_LOG_DIR`, …) belongs to something else and is ignored,
/// as EMQX ignores `EMQX_*` variables that name no config root.
pub(crate) const ROOT_KEYS: &[&str] = &[
    "node",
    "mqtt",
    "listeners",
    "broker",
    "sys_topics",
    "log",
    "dashboard",
    "api_key",
    "prometheus",
    "gateway",
    "durable_sessions",
    "authentication",
    "authorization",
    "psk_authentication",
];

fn names_a_root(variable: &str) -> bool {
    let first = variable[ENV_PREFIX.len()..]
        .split(ENV_SEPARATOR)
        .next()
        .unwrap_or("");
    ROOT_KEYS.iter().any(|k| k.eq_ignore_ascii_case(first))
}

/// Apply `JUNCTION_A__B__C=value` variables over `root`, in name order. Segments
/// match existing keys case-insensitively; a segment matching nothing becomes a new
/// lowercase key, which serde then rejects if the schema does not know it.
pub(crate) fn apply_env(
    root: &mut Object,
    vars: &HashMap<String, String>,
) -> Result<Vec<EnvOrigin>, ConfigError> {
    let mut overrides: Vec<(&String, &String)> = vars
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && names_a_root(name))
        .collect();
    overrides.sort();
    let mut origins = Vec::with_capacity(overrides.len());
    for (variable, raw_value) in overrides {
        let segments: Vec<&str> = variable[ENV_PREFIX.len()..].split(ENV_SEPARATOR).collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return Err(ConfigError::invalid(
                variable.as_str(),
                format!(
                    "environment variable name has an empty key segment \
                     (expected {ENV_PREFIX}SECTION__KEY, e.g. {ENV_PREFIX}MQTT__MAX_PACKET_SIZE)"
                ),
            ));
        }
        let key_path = set_path(root, &segments, parse_env_value(raw_value), variable)?;
        origins.push(EnvOrigin {
            key_path,
            variable: variable.clone(),
        });
    }
    Ok(origins)
}

/// Set `value` at `segments` under `root`, creating sections on the way. Returns
/// the rendered key path actually used.
fn set_path(
    root: &mut Object,
    segments: &[&str],
    value: HoconValue,
    variable: &str,
) -> Result<String, ConfigError> {
    let mut keys: Vec<String> = Vec::with_capacity(segments.len());
    let mut map = root;
    let (last, parents) = segments
        .split_last()
        .expect("split always yields a segment");
    for segment in parents {
        let key = matching_key(map, segment);
        keys.push(key.clone());
        let entry = map
            .entry(key)
            .or_insert_with(|| HoconValue::Object(Object::new()));
        match entry {
            HoconValue::Object(inner) => map = inner,
            _ => {
                let parent = render_path(keys.iter().map(String::as_str));
                keys.extend(
                    segments[keys.len()..]
                        .iter()
                        .map(|s| s.to_ascii_lowercase()),
                );
                return Err(ConfigError::invalid(
                    render_path(keys.iter().map(String::as_str)),
                    format!(
                        "unknown key: {parent} is a value, not a section \
                         (set by environment variable {variable})"
                    ),
                ));
            }
        }
    }
    let key = matching_key(map, last);
    keys.push(key.clone());
    match (map.get_mut(&key), value) {
        (Some(HoconValue::Object(existing)), HoconValue::Object(over)) => {
            merge_into(existing, over);
        }
        (_, value) => {
            map.insert(key, value);
        }
    }
    Ok(render_path(keys.iter().map(String::as_str)))
}

/// The key in `map` that `segment` names: exact, else case-insensitive, else the
/// lowercase segment (config keys are lowercase).
fn matching_key(map: &Object, segment: &str) -> String {
    if map.contains_key(segment) {
        return segment.to_string();
    }
    map.keys()
        .find(|key| key.eq_ignore_ascii_case(segment))
        .cloned()
        .unwrap_or_else(|| segment.to_ascii_lowercase())
}

/// An environment value read as a HOCON value (`2MB`, `1024`, `true`, `[1, 2]`,
/// `{ a = 1 }`, `"quoted"`); text that is not valid HOCON, or that HOCON would read
/// as an unquoted string, is kept verbatim (so `a//b` or `x # y` survive).
fn parse_env_value(raw: &str) -> HoconValue {
    let verbatim = || HoconValue::Scalar(ScalarValue::string(raw.to_string()));
    let Ok(parsed) = hocon::parse_with_env(&format!("value = {raw}"), &HashMap::new()) else {
        return verbatim();
    };
    match parsed.get("value") {
        Some(HoconValue::Scalar(scalar))
            if scalar.value_type == ScalarType::String && !raw.trim_start().starts_with('"') =>
        {
            verbatim()
        }
        Some(value) => value.clone(),
        None => verbatim(),
    }
}

/// Give every listener its kind's default `bind`, and `ssl_options` / `websocket`
/// sections where the kind has them; refuse those sections where it does not, and
/// refuse listener names EMQX would refuse.
pub(crate) fn complete_listeners(root: &mut Object) -> Result<(), ConfigError> {
    let Some(HoconValue::Object(listeners)) = root.get_mut("listeners") else {
        return Ok(());
    };
    for kind in ListenerKind::ALL {
        let Some(HoconValue::Object(named)) = listeners.get_mut(kind.as_str()) else {
            continue;
        };
        for (name, listener) in named.iter_mut() {
            let path = |key: Option<&str>| {
                render_path(
                    ["listeners", kind.as_str(), name.as_str()]
                        .into_iter()
                        .chain(key),
                )
            };
            if !is_valid_listener_name(name) {
                return Err(ConfigError::invalid(
                    path(None),
                    "invalid listener name: must start with a letter and contain only \
                     letters, digits, '_' and '-'",
                ));
            }
            let HoconValue::Object(settings) = listener else {
                continue;
            };
            for (key, allowed, kinds) in [
                ("ssl_options", kind.is_tls(), "ssl and wss"),
                ("websocket", kind.is_websocket(), "ws and wss"),
            ] {
                if allowed {
                    settings
                        .entry(key.to_string())
                        .or_insert_with(|| HoconValue::Object(Object::new()));
                } else if settings.contains_key(key) {
                    return Err(ConfigError::invalid(
                        path(Some(key)),
                        format!("unknown key (only {kinds} listeners have {key})"),
                    ));
                }
            }
            settings.entry("bind".to_string()).or_insert_with(|| {
                HoconValue::Scalar(ScalarValue::number(kind.default_port().to_string()))
            });
        }
    }
    Ok(())
}

/// EMQX's rule for listener names: `^[a-zA-Z][0-9a-zA-Z_-]*$`.
pub(crate) fn is_valid_listener_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Read the merged tree into the typed config.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(root: Object) -> Result<T, ConfigError> {
    hocon::from_value(&HoconValue::Object(root)).map_err(|error| {
        let key_path = if error.path.is_empty() {
            "<root>".to_string()
        } else {
            error.path.clone()
        };
        ConfigError::invalid(key_path, explain(&error.message))
    })
}

/// Read one section of the merged tree, at key path `prefix`, into `T`; errors carry the
/// full path.
pub(crate) fn deserialize_value<T: serde::de::DeserializeOwned>(
    prefix: &[&str],
    value: HoconValue,
) -> Result<T, ConfigError> {
    hocon::from_value(&value).map_err(|error| {
        let mut key_path = render_path(prefix.iter().copied());
        if !error.path.is_empty() {
            key_path = format!("{key_path}.{}", error.path);
        }
        ConfigError::invalid(key_path, explain(&error.message))
    })
}

/// A tree value as JSON (numbers stay numbers when they parse as one).
pub(crate) fn to_json(value: &HoconValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        HoconValue::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        HoconValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        HoconValue::Scalar(s) => match s.value_type {
            ScalarType::Boolean => Value::Bool(s.raw == "true"),
            ScalarType::Null => Value::Null,
            ScalarType::Number => {
                serde_json::from_str(&s.raw).unwrap_or_else(|_| Value::String(s.raw.clone()))
            }
            _ => Value::String(s.raw.clone()),
        },
        _ => Value::Null,
    }
}

/// A JSON value as a tree value (what the management API writes into a section).
pub(crate) fn from_json(value: &serde_json::Value) -> HoconValue {
    use serde_json::Value;
    match value {
        Value::Null => HoconValue::Scalar(ScalarValue::null()),
        Value::Bool(b) => HoconValue::Scalar(ScalarValue::boolean(*b)),
        Value::Number(n) => HoconValue::Scalar(ScalarValue::number(n.to_string())),
        Value::String(s) => HoconValue::Scalar(ScalarValue::string(s.clone())),
        Value::Array(items) => HoconValue::Array(items.iter().map(from_json).collect()),
        Value::Object(map) => {
            HoconValue::Object(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

/// Add "(set by environment variable …)" to an error about a key an environment
/// variable set or something inside it, and "(… sets a key inside it)" to an error
/// about a value an environment variable reached into.
pub(crate) fn blame_env(error: ConfigError, origins: &[EnvOrigin]) -> ConfigError {
    let ConfigError::Invalid { key_path, message } = error else {
        return error;
    };
    let is_inside = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
    };
    let note = origins
        .iter()
        .rev()
        .find(|origin| is_inside(&key_path, &origin.key_path))
        .map(|origin| format!("set by environment variable {}", origin.variable))
        .or_else(|| {
            origins
                .iter()
                .rev()
                .find(|origin| is_inside(&origin.key_path, &key_path))
                .map(|origin| {
                    format!(
                        "environment variable {} sets a key inside it",
                        origin.variable
                    )
                })
        });
    match note {
        Some(note) if !message.contains(ENV_PREFIX) => ConfigError::Invalid {
            key_path,
            message: format!("{message} ({note})"),
        },
        _ => ConfigError::Invalid { key_path, message },
    }
}

/// Reword serde's messages in config terms: "unknown field" becomes "unknown key"
/// with a suggestion, debug dumps of values become plain words.
fn explain(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if message.starts_with("unknown field") {
        let Some((unknown, expected)) = quoted.split_first() else {
            return "unknown key".to_string();
        };
        return match closest(unknown, expected) {
            Some(suggestion) => format!("unknown key (did you mean `{suggestion}`?)"),
            None if expected.is_empty() => "unknown key".to_string(),
            None => format!("unknown key (expected one of: {})", expected.join(", ")),
        };
    }
    if message.starts_with("unknown variant") {
        if let Some((unknown, expected)) = quoted.split_first() {
            return format!(
                "invalid value {unknown:?} (expected one of: {})",
                expected.join(", ")
            );
        }
    }
    if message.starts_with("expected object, got") {
        return "expected a section (`{ … }`)".to_string();
    }
    if let Some(rest) = message.strip_prefix("cannot parse ") {
        if let Some((value, target)) = rest.rsplit_once(" as ") {
            return format!("invalid value {value} (expected {})", describe_type(target));
        }
    }
    if let Some(value) = message
        .strip_prefix("cannot coerce ")
        .and_then(|rest| rest.strip_suffix(" to bool"))
    {
        return format!("invalid value {value} (expected true or false)");
    }
    // The HOCON reader prints the offending value as a Rust debug dump.
    if let Some((expected, got)) = message.split_once(", got ") {
        let got = if got.starts_with("Array(") {
            "a list"
        } else if got.starts_with("Object(") {
            "a section"
        } else if got.starts_with("Scalar(") {
            "a single value"
        } else {
            got
        };
        return format!("{expected}, got {got}");
    }
    message.to_string()
}

/// A Rust type name as config users know it.
fn describe_type(rust_type: &str) -> String {
    let range = |min: i128, max: i128| format!("an integer from {min} to {max}");
    match rust_type {
        "u8" => range(0, u8::MAX.into()),
        "u16" => range(0, u16::MAX.into()),
        "u32" => range(0, u32::MAX.into()),
        "u64" => range(0, u64::MAX.into()),
        "i32" => range(i32::MIN.into(), i32::MAX.into()),
        "i64" => range(i64::MIN.into(), i64::MAX.into()),
        "f32" | "f64" => "a number".to_string(),
        other => other.to_string(),
    }
}

/// The candidate within edit distance 2 of `word`, if one is clearly meant.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2 && *distance < word.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_top_level_section_can_be_set_from_the_environment() {
        // A section missing here made its JUNCTION_* variables be ignored as if they
        // belonged to something else (durable_sessions, authentication, authorization).
        let sections = serde_json::to_value(crate::Config::default()).unwrap();
        let sections = sections.as_object().unwrap();
        for key in sections.keys() {
            assert!(
                ROOT_KEYS.contains(&key.as_str()),
                "{key} is not in ROOT_KEYS"
            );
        }
        let env = [
            ("JUNCTION_DURABLE_SESSIONS__COMMIT_BEFORE_ACK", "true"),
            (
                "JUNCTION_AUTHORIZATION__SOURCES",
                "[{type = file, path = \"acl.conf\"}]",
            ),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = crate::Config::from_str_with_env("", env.to_vec()).unwrap();
        assert!(c.durable_sessions.commit_before_ack);
        assert_eq!(c.authorization.sources.map(|s| s.len()), Some(1));
    }

    #[test]
    fn env_values_read_as_hocon_or_verbatim() {
        let number = parse_env_value("1024");
        assert_eq!(number.as_i64(), Some(1024));
        assert_eq!(parse_env_value("true").as_bool(), Some(true));
        assert_eq!(parse_env_value("2MB").as_str(), Some("2MB"));
        assert_eq!(
            parse_env_value("0.0.0.0:1884").as_str(),
            Some("0.0.0.0:1884")
        );
        assert_eq!(
            parse_env_value("http://a:1, http://b:2").as_str(),
            Some("http://a:1, http://b:2")
        );
        assert_eq!(parse_env_value("\"quoted\"").as_str(), Some("quoted"));
        assert_eq!(
            parse_env_value("[\"allow all\"]")
                .as_array()
                .map(<[_]>::len),
            Some(1)
        );
    }

    #[test]
    fn unknown_field_messages_suggest_the_closest_key() {
        assert_eq!(
            explain("unknown field `bnd`, expected one of `enable`, `bind`"),
            "unknown key (did you mean `bind`?)"
        );
        assert_eq!(
            explain("unknown field `zzzzzz`, expected `enable` or `bind`"),
            "unknown key (expected one of: enable, bind)"
        );
        assert_eq!(
            explain("unknown field `x`, there are no fields"),
            "unknown key"
        );
    }

    #[test]
    fn listener_names_follow_emqx_rule() {
        assert!(is_valid_listener_name("default"));
        assert!(is_valid_listener_name("a-1_b"));
        assert!(!is_valid_listener_name("1a"));
        assert!(!is_valid_listener_name(""));
        assert!(!is_valid_listener_name("a.b"));
    }
}
