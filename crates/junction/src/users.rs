//! Built-in authentication users added through the management API, kept in the data file
//! (namespace `authn_users`, key `<chain>\n<user id>`), never in the bootstrap files.

use junction_auth::{User, UserStore};
use junction_store::{kv, Store};
use std::sync::Arc;

/// The data file as the authenticators' [`UserStore`].
pub(crate) struct StoredUsers(pub(crate) Arc<dyn Store>);

fn key(chain: &str, user_id: &str) -> String {
    format!("{chain}\n{user_id}")
}

impl UserStore for StoredUsers {
    fn load(&self, chain: &str) -> Result<Vec<User>, String> {
        let prefix = key(chain, "");
        let mut users = Vec::new();
        for (k, bytes) in self.0.list_kv(kv::USERS).map_err(|e| e.to_string())? {
            if !k.starts_with(&prefix) {
                continue;
            }
            let user: User = serde_json::from_slice(&bytes)
                .map_err(|e| format!("data file: user {k:?}: {e}"))?;
            users.push(user);
        }
        Ok(users)
    }

    fn put(&self, chain: &str, user: &User) -> Result<(), String> {
        let bytes = serde_json::to_vec(user).map_err(|e| e.to_string())?;
        self.0
            .put_kv(kv::USERS, &key(chain, &user.user_id), &bytes)
            .and_then(|()| self.0.commit())
            .map_err(|e| e.to_string())
    }

    fn clear(&self, chain: &str) -> Result<(), String> {
        let prefix = key(chain, "");
        for (k, _) in self.0.list_kv(kv::USERS).map_err(|e| e.to_string())? {
            if k.starts_with(&prefix) {
                self.0.delete_kv(kv::USERS, &k).map_err(|e| e.to_string())?;
            }
        }
        self.0.commit().map_err(|e| e.to_string())
    }

    fn delete(&self, chain: &str, user_id: &str) -> Result<(), String> {
        self.0
            .delete_kv(kv::USERS, &key(chain, user_id))
            .and_then(|()| self.0.commit())
            .map_err(|e| e.to_string())
    }
}
