//! Changes made through the management API, kept in the data file (namespace
//! `config_changes`, key `gateway.<name>`), never in the operator's config file.

use junction_gateway::ChangeStore;
use junction_store::{kv, Store};
use std::sync::Arc;

/// The data file as the gateways' [`ChangeStore`].
pub(crate) struct StoredChanges(pub(crate) Arc<dyn Store>);

const PREFIX: &str = "gateway.";

impl ChangeStore for StoredChanges {
    fn load(&self) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
        let mut all = Vec::new();
        for (key, bytes) in self.0.list_kv(kv::CONFIG_CHANGES)? {
            let Some(name) = key.strip_prefix(PREFIX) else {
                continue;
            };
            let value = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("data file: config change {key}: {e}"))?;
            all.push((name.to_string(), value));
        }
        Ok(all)
    }

    fn save(&self, gateway: &str, change: &serde_json::Value) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(change)?;
        self.0
            .put_kv(kv::CONFIG_CHANGES, &format!("{PREFIX}{gateway}"), &bytes)?;
        // Kept before the API answers.
        self.0.commit()?;
        Ok(())
    }
}
