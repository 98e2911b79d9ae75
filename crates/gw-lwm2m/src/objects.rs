//! The object definitions a gateway types values with: the core objects built in, the
//! files of `xml_dir` over them, and (beyond EMQX) definitions added, replaced and
//! removed at run time through `/api/v5/gateways/lwm2m/objects`, without a restart.
//! Channels read a snapshot; a change swaps it.

use junction_codec_lwm2m::{load_dir, parse_object_xml, ObjectDef, ObjectRegistry};
use junction_gateway::GatewayResources;
use parking_lot::RwLock;
use serde_json::Value as Json;
use std::sync::Arc;

/// A gateway's object definitions.
#[derive(Debug)]
pub struct Objects {
    registry: RwLock<Arc<ObjectRegistry>>,
}

impl Default for Objects {
    fn default() -> Self {
        Objects {
            registry: RwLock::new(Arc::new(ObjectRegistry::with_core())),
        }
    }
}

impl Objects {
    /// The definitions as they are now.
    pub fn snapshot(&self) -> Arc<ObjectRegistry> {
        self.registry.read().clone()
    }

    /// Read every `*.xml` file of `dir` over the definitions held. A file that does not
    /// parse is logged and skipped; a directory that cannot be read is an error.
    pub fn load_dir(&self, dir: &str) -> anyhow::Result<usize> {
        let (defs, failures) =
            load_dir(dir).map_err(|e| anyhow::anyhow!("gateway.lwm2m.xml_dir {dir}: {e}"))?;
        for (path, error) in failures {
            tracing::warn!(file = %path.display(), %error, "lwm2m object definition skipped");
        }
        let n = defs.len();
        self.change(|r| r.extend(defs));
        Ok(n)
    }

    fn change(&self, f: impl FnOnce(&mut ObjectRegistry)) {
        let mut guard = self.registry.write();
        let mut registry = (**guard).clone();
        f(&mut registry);
        *guard = Arc::new(registry);
    }
}

/// The most definitions one request may add.
const MAX_PER_REQUEST: usize = 64;

impl GatewayResources for Objects {
    fn list(&self) -> Json {
        let registry = self.snapshot();
        Json::Array(registry.iter().map(|d| d.to_json()).collect())
    }

    fn get(&self, id: &str) -> Option<Json> {
        let id: u16 = id.parse().ok()?;
        self.snapshot().get(id).map(|d| d.to_json())
    }

    /// `{"xml": "<LWM2M>…</LWM2M>"}` (OMA object XML, one or more objects) or an object
    /// as `GET` shows it. Answers the definitions added or replaced.
    fn put(&self, body: &Json) -> Result<Json, String> {
        let defs: Vec<ObjectDef> = match body.get("xml") {
            Some(Json::String(xml)) => parse_object_xml(xml).map_err(|e| e.to_string())?,
            Some(_) => return Err("xml: a string".into()),
            None => vec![ObjectDef::from_json(body).map_err(|e| e.to_string())?],
        };
        if defs.is_empty() || defs.len() > MAX_PER_REQUEST {
            return Err(format!("1 to {MAX_PER_REQUEST} objects per request"));
        }
        let shown = Json::Array(defs.iter().map(|d| d.to_json()).collect());
        self.change(|r| r.extend(defs));
        Ok(shown)
    }

    fn delete(&self, id: &str) -> bool {
        let Ok(id) = id.parse::<u16>() else {
            return false;
        };
        let mut removed = false;
        self.change(|r| removed = r.remove(id).is_some());
        removed
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<LWM2M><Object ObjectType="MODefinition"><Name>Temperature</Name><ObjectID>3303</ObjectID>
<MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>
<Resources><Item ID="5700"><Name>Sensor Value</Name><Operations>R</Operations>
<MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>
<Type>Float</Type></Item></Resources></Object></LWM2M>"#;

    #[test]
    fn objects_are_added_replaced_and_removed_at_run_time() {
        let objects = Objects::default();
        assert!(objects.get("3").is_some(), "core objects are built in");
        assert!(objects.get("3303").is_none());
        let before = objects.snapshot();
        let added = objects.put(&serde_json::json!({ "xml": XML })).unwrap();
        assert_eq!(added[0]["id"], 3303);
        assert_eq!(
            objects.get("3303").unwrap()["resources"][0]["type"],
            "Float"
        );
        assert!(
            before.get(3303).is_none(),
            "a snapshot taken before does not change"
        );
        // The JSON form round-trips.
        let json = objects.get("3303").unwrap();
        objects.put(&json).unwrap();
        assert!(objects.delete("3303"));
        assert!(!objects.delete("3303"));
        assert!(objects
            .put(&serde_json::json!({ "xml": "<LWM2M>" }))
            .is_err());
        assert!(objects.put(&serde_json::json!({ "id": "x" })).is_err());
    }
}
