//! Authenticators, `authentication { … }` (EMQX keys).
//!
//! The same block configures the MQTT chain (`authentication = [ … ]` at the root, a list),
//! a gateway's global chain (`gateway.<name>.authentication { … }`, one authenticator) and a
//! listener's own chain (`….listeners.<type>.<name>.authentication { … }`).
//!
//! Supported: `mechanism = password_based` with `backend = built_in_database` (users
//! loaded from `bootstrap_file`). Any other mechanism or backend is refused at start by
//! name, so a configuration that relies on one never runs with authentication quietly off.

use serde::{Deserialize, Serialize};

/// `mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// User id and password.
    PasswordBased,
}

/// `backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Users kept by the broker.
    BuiltInDatabase,
}

/// `user_id_type`: which client field is the user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdType {
    /// The user name (default).
    #[default]
    Username,
    /// The client id.
    Clientid,
}

/// `password_hash_algorithm.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashName {
    /// Stored as given.
    Plain,
    /// Salted SHA-256, hex.
    Sha256,
    /// Salted SHA-512, hex.
    Sha512,
}

/// `password_hash_algorithm.salt_position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaltPosition {
    /// `salt ++ password`.
    Prefix,
    /// `password ++ salt` (default).
    #[default]
    Suffix,
    /// No salt.
    Disable,
}

/// `password_hash_algorithm { name, salt_position }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordHashAlgorithm {
    /// Hash function. Default `sha256`.
    pub name: HashName,
    /// Where the salt goes. Default `suffix`.
    pub salt_position: SaltPosition,
}

impl Default for PasswordHashAlgorithm {
    fn default() -> Self {
        PasswordHashAlgorithm {
            name: HashName::Sha256,
            salt_position: SaltPosition::Suffix,
        }
    }
}

/// `bootstrap_type`: how the bootstrap file holds passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapType {
    /// `user_id,password,is_superuser` (default): hashed on import.
    #[default]
    Plain,
    /// `user_id,password_hash,salt,is_superuser`: already hashed with the configured
    /// algorithm.
    Hash,
}

/// One authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthnConfig {
    /// `password_based`. Required.
    pub mechanism: Mechanism,
    /// `built_in_database`. Required.
    pub backend: Backend,
    /// Whether it takes part. Default `true`.
    #[serde(default = "yes")]
    pub enable: bool,
    /// Default `username`.
    #[serde(default)]
    pub user_id_type: UserIdType,
    /// Default `{name = sha256, salt_position = suffix}`.
    #[serde(default)]
    pub password_hash_algorithm: PasswordHashAlgorithm,
    /// Users loaded at start: `.csv` (with a header line) or `.json` (an array of objects).
    /// Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_file: Option<String>,
    /// Default `plain`.
    #[serde(default)]
    pub bootstrap_type: BootstrapType,
}

fn yes() -> bool {
    true
}
