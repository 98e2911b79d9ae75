//! What the API keeps in the data file: records of a key/value namespace, as JSON,
//! committed before the API answers.

use crate::error::ApiError;
use junction_store::Store;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// A namespace of the data file (none in tests that run without one).
#[derive(Clone)]
pub struct Kept {
    store: Option<Arc<dyn Store>>,
    namespace: &'static str,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Kept {
    /// Namespace `namespace` of `store`.
    pub fn new(store: Option<Arc<dyn Store>>, namespace: &'static str) -> Kept {
        Kept { store, namespace }
    }

    /// Every record.
    pub fn load<T: DeserializeOwned>(&self) -> anyhow::Result<Vec<(String, T)>> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        let mut all = Vec::new();
        for (key, bytes) in store.list_kv(self.namespace)? {
            let value = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("data file: {} record {key:?}: {e}", self.namespace)
            })?;
            all.push((key, value));
        }
        Ok(all)
    }

    /// The record under `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> anyhow::Result<Option<T>> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        match store.get_kv(self.namespace, key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("data file: {} record {key:?}: {e}", self.namespace)),
        }
    }

    /// Keep `value` under `key`.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ApiError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.to_string()))?;
        store
            .put_kv(self.namespace, key, &bytes)
            .and_then(|()| store.commit())
            .map_err(|e| ApiError::internal(format!("the data file: {e}")))
    }

    /// Forget `key`.
    pub fn delete(&self, key: &str) -> Result<(), ApiError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        store
            .delete_kv(self.namespace, key)
            .and_then(|()| store.commit())
            .map_err(|e| ApiError::internal(format!("the data file: {e}")))
    }
}
