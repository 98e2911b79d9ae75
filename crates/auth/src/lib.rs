//! Authentication chains with EMQX's selection rules (reference §1.7).
//!
//! A chain is an ordered list of [`Authenticator`]s, named after what it guards: `mqtt:global`
//! and `<gateway protocol>:global` for a protocol, a listener id (`tcp:default`,
//! `stomp:tcp:default`) for one listener. At connect time:
//!
//! - a listener with `enable_authn = false` skips authentication (the client is let in);
//! - else the listener's own chain is used if it exists, otherwise the protocol's global one;
//! - no chain, or a chain whose authenticators are all disabled, lets the client in;
//! - otherwise each enabled authenticator in turn allows, denies or ignores; when all
//!   ignore, the client is refused with `not_authorized`.

pub mod access;
pub mod acl;
pub mod authz;
pub mod builtin;

pub use builtin::{BuiltInDatabase, ImportReport, User};
pub use junction_broker::hooks::AuthnResult;

use ahash::{AHashMap, AHashSet};
use junction_config::authn::{AuthnConfig, Backend, Mechanism};
use junction_types::ClientInfo;
use parking_lot::RwLock;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

/// What an authenticator is asked.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The client (client id, user name, listener, peer, …).
    pub client: &'a ClientInfo,
    /// The password it presented.
    pub password: Option<&'a [u8]>,
}

/// The future an authenticator returns (backends that call out are asynchronous).
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = AuthnResult> + Send + 'a>>;

/// One authenticator of a chain.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Its id as EMQX prints it, e.g. `password_based:built_in_database`.
    fn id(&self) -> &'static str;
    /// Whether it takes part (`enable`).
    fn enabled(&self) -> bool;
    /// Allow, deny, or [`AuthnResult::Ignore`] to pass to the next one.
    fn authenticate<'a>(&'a self, req: Request<'a>) -> AuthFuture<'a>;
    /// The built-in database, if this is one (its users are managed through the API).
    fn builtin(&self) -> Option<&BuiltInDatabase> {
        None
    }
}

/// Where built-in users added at run time are kept, by chain name (the server keeps them
/// in its data file). A user kept for a chain is loaded whenever that chain's built-in
/// database is built, over the bootstrap file's.
pub trait UserStore: Send + Sync {
    /// Every user kept for `chain`.
    fn load(&self, chain: &str) -> Result<Vec<User>, String>;
    /// Keep `user` for `chain`, durably.
    fn put(&self, chain: &str, user: &User) -> Result<(), String>;
    /// Forget user `user_id` of `chain`.
    fn delete(&self, chain: &str, user_id: &str) -> Result<(), String>;
    /// Forget every user of `chain`.
    fn clear(&self, chain: &str) -> Result<(), String>;
}

/// Why an authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The bootstrap file could not be read or parsed.
    #[error("authentication bootstrap file {path}: {reason}")]
    Bootstrap {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The users kept in the data file could not be read.
    #[error("kept users: {reason}")]
    Kept {
        /// What is wrong.
        reason: String,
    },
}

/// One chain: its authenticators in order.
pub type Chain = Arc<Vec<Arc<dyn Authenticator>>>;

/// Every authentication chain of the node, by name.
#[derive(Default)]
pub struct AuthnChains {
    chains: RwLock<AHashMap<String, Chain>>,
    no_authn_listeners: RwLock<AHashSet<String>>,
    users: RwLock<Option<Arc<dyn UserStore>>>,
}

impl std::fmt::Debug for AuthnChains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthnChains")
            .field("chains", &self.chain_names())
            .finish_non_exhaustive()
    }
}

impl AuthnChains {
    /// Keep built-in users added at run time in `store` (set once, before any chain).
    pub fn set_user_store(&self, store: Arc<dyn UserStore>) {
        *self.users.write() = Some(store);
    }

    /// Build the authenticator of chain `chain` that `config` describes: a built-in
    /// database gets its bootstrap file's users, then those kept for the chain.
    pub fn build(
        &self,
        chain: &str,
        config: &AuthnConfig,
    ) -> Result<Arc<dyn Authenticator>, AuthError> {
        match (config.mechanism, config.backend) {
            (Mechanism::PasswordBased, Backend::BuiltInDatabase) => {
                let mut db = BuiltInDatabase::new(config);
                if let Some(path) = &config.bootstrap_file {
                    db.bootstrap(Path::new(path), config.bootstrap_type)?;
                }
                if let Some(store) = self.users.read().clone() {
                    db = db
                        .kept_in(chain, store)
                        .map_err(|reason| AuthError::Kept { reason })?;
                }
                Ok(Arc::new(db))
            }
        }
    }

    /// Forget the users kept for chain `chain`: its built-in database was deleted, and
    /// one created in its place starts empty (EMQX drops the authenticator's table).
    pub fn forget_users(&self, chain: &str) -> Result<(), AuthError> {
        match self.users.read().clone() {
            Some(store) => store
                .clear(chain)
                .map_err(|reason| AuthError::Kept { reason }),
            None => Ok(()),
        }
    }

    /// The built-in database of chain `chain`, if it has one.
    pub fn builtin(&self, chain: &str) -> Option<Arc<dyn Authenticator>> {
        let chain = self.chain(chain)?;
        chain.iter().find(|a| a.builtin().is_some()).cloned()
    }

    /// Install (or replace) chain `name`. An empty list removes it.
    pub fn set_chain(&self, name: &str, authenticators: Vec<Arc<dyn Authenticator>>) {
        let mut chains = self.chains.write();
        if authenticators.is_empty() {
            chains.remove(name);
        } else {
            chains.insert(name.to_string(), Arc::new(authenticators));
        }
    }

    /// Remove chain `name`.
    pub fn remove_chain(&self, name: &str) {
        self.chains.write().remove(name);
    }

    /// The authenticators of chain `name`.
    pub fn chain(&self, name: &str) -> Option<Chain> {
        self.chains.read().get(name).cloned()
    }

    /// Names of the installed chains, sorted.
    pub fn chain_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.chains.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// A listener's `enable_authn`.
    pub fn set_listener_authn(&self, listener: &str, enable: bool) {
        let mut set = self.no_authn_listeners.write();
        if enable {
            set.remove(listener);
        } else {
            set.insert(listener.to_string());
        }
    }

    /// True if a client of `listener` must authenticate: the listener's `enable_authn` is
    /// on and its chain (else `global`) has an enabled authenticator. A gateway asks
    /// before it grants anything to a peer that did not authenticate (an MQTT-SN QoS −1
    /// publish, a session moved to a new address).
    pub fn required(&self, listener: &str, global: &str) -> bool {
        if self.no_authn_listeners.read().contains(listener) {
            return false;
        }
        let chains = self.chains.read();
        chains
            .get(listener)
            .or_else(|| chains.get(global))
            .is_some_and(|chain| chain.iter().any(|a| a.enabled()))
    }

    /// Authenticate `client` (its `listener` selects the chain; `global` is the protocol's
    /// global chain, e.g. `stomp:global`).
    pub async fn authenticate(
        &self,
        client: &ClientInfo,
        global: &str,
        password: Option<&[u8]>,
    ) -> AuthnResult {
        if self.no_authn_listeners.read().contains(&*client.listener) {
            return AuthnResult::Ignore;
        }
        let chain = {
            let chains = self.chains.read();
            chains
                .get(&*client.listener)
                .or_else(|| chains.get(global))
                .cloned()
        };
        let Some(chain) = chain else {
            return AuthnResult::Ignore;
        };
        let mut any_enabled = false;
        for a in chain.iter().filter(|a| a.enabled()) {
            any_enabled = true;
            match a.authenticate(Request { client, password }).await {
                AuthnResult::Ignore => continue,
                decided => return decided,
            }
        }
        if any_enabled {
            AuthnResult::Deny("not_authorized".into())
        } else {
            AuthnResult::Ignore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_config::authn::UserIdType;

    pub(crate) fn client(listener: &str, username: Option<&str>) -> ClientInfo {
        ClientInfo {
            clientid: "c1".into(),
            username: username.map(Into::into),
            protocol: "stomp",
            proto_ver: "1.2".into(),
            peername: "127.0.0.1:1".parse().unwrap(),
            sockport: 61613,
            listener: listener.into(),
            mountpoint: String::new(),
            keepalive: 0,
            clean_start: true,
            expiry_interval: 0,
            connected_at: 0,
            is_superuser: false,
            extras: Default::default(),
        }
    }

    fn db(users: &[(&str, &str, bool)]) -> Arc<dyn Authenticator> {
        let db = BuiltInDatabase::new(&builtin::tests::config(UserIdType::Username));
        for (u, p, s) in users {
            db.add_user(u, p.as_bytes(), *s).unwrap();
        }
        Arc::new(db)
    }

    #[tokio::test]
    async fn no_chain_lets_everyone_in() {
        let chains = AuthnChains::default();
        let r = chains
            .authenticate(&client("stomp:tcp:default", None), "stomp:global", None)
            .await;
        assert_eq!(r, AuthnResult::Ignore);
        assert!(r.is_allowed());
    }

    #[tokio::test]
    async fn the_global_chain_decides_when_the_listener_has_none() {
        let chains = AuthnChains::default();
        chains.set_chain("stomp:global", vec![db(&[("bob", "pw", false)])]);
        let c = client("stomp:tcp:default", Some("bob"));
        let ok = chains.authenticate(&c, "stomp:global", Some(b"pw")).await;
        assert!(matches!(ok, AuthnResult::Allow { .. }));
        let bad = chains.authenticate(&c, "stomp:global", Some(b"no")).await;
        assert_eq!(bad, AuthnResult::Deny("bad_username_or_password".into()));
        // An unknown user is ignored by the database, and a chain where all ignore refuses.
        let who = client("stomp:tcp:default", Some("eve"));
        let r = chains.authenticate(&who, "stomp:global", Some(b"pw")).await;
        assert_eq!(r, AuthnResult::Deny("not_authorized".into()));
    }

    #[tokio::test]
    async fn a_listener_chain_replaces_the_global_one() {
        let chains = AuthnChains::default();
        chains.set_chain("stomp:global", vec![db(&[("bob", "pw", false)])]);
        chains.set_chain("stomp:tcp:other", vec![db(&[("ann", "pw2", true)])]);
        let bob = client("stomp:tcp:other", Some("bob"));
        let r = chains.authenticate(&bob, "stomp:global", Some(b"pw")).await;
        assert_eq!(r, AuthnResult::Deny("not_authorized".into()));
        let ann = client("stomp:tcp:other", Some("ann"));
        let r = chains
            .authenticate(&ann, "stomp:global", Some(b"pw2"))
            .await;
        assert_eq!(
            r,
            AuthnResult::Allow {
                is_superuser: true,
                expire_at: None
            }
        );
    }

    #[tokio::test]
    async fn enable_authn_false_skips_the_chain() {
        let chains = AuthnChains::default();
        chains.set_chain("stomp:global", vec![db(&[("bob", "pw", false)])]);
        chains.set_listener_authn("stomp:tcp:open", false);
        let c = client("stomp:tcp:open", Some("eve"));
        let r = chains.authenticate(&c, "stomp:global", None).await;
        assert_eq!(r, AuthnResult::Ignore);
        chains.set_listener_authn("stomp:tcp:open", true);
        let r = chains.authenticate(&c, "stomp:global", None).await;
        assert!(!r.is_allowed());
    }

    #[tokio::test]
    async fn a_chain_of_disabled_authenticators_lets_everyone_in() {
        let chains = AuthnChains::default();
        let mut cfg = builtin::tests::config(UserIdType::Username);
        cfg.enable = false;
        chains.set_chain(
            "mqtt:global",
            vec![chains.build("mqtt:global", &cfg).unwrap()],
        );
        let r = chains
            .authenticate(&client("tcp:default", Some("x")), "mqtt:global", None)
            .await;
        assert_eq!(r, AuthnResult::Ignore);
    }
}
