//! Every key the loader accepts, read off the config types themselves.
//!
//! The loader deserializes HOCON into [`crate::Config`] through serde, and serde's derived
//! code names each struct's fields when it asks for a struct. [`accepted_keys`] drives that
//! same derived code with a probing deserializer: one probe per key, which follows a path
//! of field names, map entries and list elements down from the root and reports what the
//! type asks for there (a struct and its fields, a map, a list, or a single value), then
//! stops. Adding a field to a config type adds a key here without anyone writing it down,
//! so the status table ([`crate::key_status`]) cannot fall behind silently.
//!
//! Paths are written as in the config file: `listeners.<type>.<name>.bind` for map entries
//! (the placeholder names the map: `<name>`), `authentication[].backend` for list elements.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One step down from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A struct field.
    Field(&'static str),
    /// An entry of a map with string keys.
    Entry,
    /// An element of a list.
    Element,
}

/// What the type asks for at the end of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// A struct with these fields.
    Struct(&'static [&'static str]),
    /// A map from names to values.
    Map,
    /// A list.
    Seq,
    /// One value (number, string, boolean, enum variant, duration, size …).
    Leaf,
}

/// The probe's way of stopping once it has seen what it came for.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe stopped")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// Follows `path` and records the shape found at its end in `found`.
struct Probe<'a> {
    path: &'a [Step],
    found: &'a mut Option<Shape>,
}

impl<'a> Probe<'a> {
    fn record(self, shape: Shape) -> Result<Never, Stop> {
        *self.found = Some(shape);
        Err(Stop)
    }
}

/// Nothing: a probe never produces a value.
enum Never {}

macro_rules! leaf {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            self.record(Shape::Leaf).map(|never| match never {})
        })*
    };
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    leaf! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_identifier
        deserialize_ignored_any
    }

    fn deserialize_i128<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.record(Shape::Leaf).map(|never| match never {})
    }

    fn deserialize_u128<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.record(Shape::Leaf).map(|never| match never {})
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        // An optional key is the key: look through it.
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record(Shape::Leaf).map(|never| match never {})
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => self.record(Shape::Seq).map(|never| match never {}),
            Some((Step::Element, rest)) => visitor.visit_seq(OneElement {
                probe: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
            Some(_) => Err(Stop),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Stop> {
        self.record(Shape::Leaf).map(|never| match never {})
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record(Shape::Leaf).map(|never| match never {})
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => self.record(Shape::Map).map(|never| match never {}),
            Some((Step::Entry, rest)) => visitor.visit_map(OneEntry {
                key: "name",
                probe: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
            Some(_) => Err(Stop),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => self
                .record(Shape::Struct(fields))
                .map(|never| match never {}),
            Some((Step::Field(field), rest)) => visitor.visit_map(OneEntry {
                key: field,
                probe: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
            Some(_) => Err(Stop),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.record(Shape::Leaf).map(|never| match never {})
    }
}

/// A map of one entry: `key` and the probe as its value.
struct OneEntry<'a> {
    key: &'static str,
    probe: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        if self.probe.is_none() {
            return Ok(None);
        }
        seed.deserialize(de::value::StrDeserializer::<Stop>::new(self.key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        match self.probe.take() {
            Some(probe) => seed.deserialize(probe),
            None => Err(Stop),
        }
    }
}

/// A list of one element: the probe.
struct OneElement<'a> {
    probe: Option<Probe<'a>>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.probe.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

/// What `T` asks for at the end of `path`.
fn shape_at<T: de::DeserializeOwned>(path: &[Step]) -> Option<Shape> {
    let mut found = None;
    let _ = T::deserialize(Probe {
        path,
        found: &mut found,
    });
    found
}

/// How a path is written in the config file. A map entry is named after its map:
/// `listeners.tcp.<name>`, `mqtt.mqueue_priorities.<name>`.
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            Step::Entry => out.push_str(".<name>"),
            Step::Element => out.push_str("[]"),
        }
    }
    out
}

/// Every key of `T`: each leaf (a value), map and list, by its path. A struct is not a key
/// of its own (its fields are); a map or list of structs lists its entries' fields too.
fn keys_under<T: de::DeserializeOwned>() -> Vec<String> {
    let mut keys = Vec::new();
    let mut pending: Vec<Vec<Step>> = vec![Vec::new()];
    while let Some(path) = pending.pop() {
        // Paths are bounded: a recursive type would be a config no one can write.
        if path.len() > 16 {
            continue;
        }
        match shape_at::<T>(&path) {
            Some(Shape::Struct(fields)) => {
                for field in fields {
                    let mut next = path.clone();
                    next.push(Step::Field(field));
                    pending.push(next);
                }
            }
            Some(Shape::Map) => {
                keys.push(render(&path));
                let mut next = path.clone();
                next.push(Step::Entry);
                if matches!(shape_at::<T>(&next), Some(Shape::Struct(_))) {
                    pending.push(next);
                }
            }
            Some(Shape::Seq) => {
                keys.push(render(&path));
                let mut next = path.clone();
                next.push(Step::Element);
                if matches!(shape_at::<T>(&next), Some(Shape::Struct(_))) {
                    pending.push(next);
                }
            }
            Some(Shape::Leaf) | None => keys.push(render(&path)),
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Every key of a section of type `T` written at `prefix` (a gateway crate lists its
/// `gateway.<name>` keys this way), sorted.
pub fn keys_of<T: de::DeserializeOwned>(prefix: &str) -> Vec<String> {
    keys_under::<T>()
        .into_iter()
        .map(|key| format!("{prefix}.{key}"))
        .collect()
}

/// Every key the loader accepts outside `gateway.<name>` sections (which belong to the
/// gateway crates: [`keys_of`]), sorted.
pub fn accepted_keys() -> Vec<String> {
    keys_under::<crate::Config>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_finds_fields_map_entries_lists_and_optional_sections() {
        let keys = accepted_keys();
        for key in [
            "mqtt.max_packet_size",
            "listeners.tcp.<name>.bind",
            "listeners.ssl.<name>.ssl_options.certfile",
            "listeners.ws.<name>.websocket.check_origins",
            "listeners.tcp.<name>.access_rules",
            "authentication",
            "authentication[].password_hash_algorithm.name",
            "node.name",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing");
        }
        assert!(!keys.iter().any(|k| k == "listeners" || k == "mqtt"));
        assert!(!keys.iter().any(|k| k.starts_with("gateway")));
        let listener = keys_of::<crate::GatewayListeners>("gateway.x.listeners");
        assert!(listener
            .iter()
            .any(|k| k == "gateway.x.listeners.tcp.<name>.authentication.backend"));
    }
}
