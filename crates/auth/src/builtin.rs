//! `password_based:built_in_database`: users kept by the broker, with salted password
//! hashes, looked up by user name or client id.
//!
//! Users come from the bootstrap file at start (EMQX's CSV and JSON formats) and from the
//! management API later. An unknown user is *ignored* (the next authenticator decides); a
//! known user with a wrong or missing password is refused with `bad_username_or_password`.

use crate::{AuthError, AuthFuture, Authenticator, Request, UserStore};
use ahash::AHashMap;
use junction_broker::hooks::AuthnResult;
use junction_config::authn::{
    AuthnConfig, BootstrapType, HashName, PasswordHashAlgorithm, SaltPosition, UserIdType,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User name or client id, per `user_id_type`.
    pub user_id: String,
    /// The password hash (hex), or the password itself with the `plain` algorithm.
    pub password_hash: String,
    /// The salt mixed into the hash.
    pub salt: String,
    /// Superusers bypass authorization.
    pub is_superuser: bool,
}

/// The built-in database authenticator.
#[derive(Debug)]
pub struct BuiltInDatabase {
    enable: bool,
    user_id_type: UserIdType,
    algorithm: PasswordHashAlgorithm,
    users: RwLock<AHashMap<String, User>>,
    kept: Option<Kept>,
}

/// Where this database keeps the users the API changes.
struct Kept {
    chain: String,
    store: Arc<dyn UserStore>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").field("chain", &self.chain).finish()
    }
}

/// What an import did (EMQX's `import_users` answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Entries read.
    pub total: usize,
    /// New users.
    pub success: usize,
    /// Users replaced.
    #[serde(rename = "override")]
    pub overridden: usize,
    /// Entries identical to the user already there.
    pub skipped: usize,
    /// Entries that could not be read.
    pub failed: usize,
}

/// Hash `password` with `salt` as `algorithm` says.
pub fn hash_password(algorithm: PasswordHashAlgorithm, salt: &str, password: &[u8]) -> String {
    let salted = |out: &mut Vec<u8>| match algorithm.salt_position {
        SaltPosition::Prefix => {
            out.extend_from_slice(salt.as_bytes());
            out.extend_from_slice(password);
        }
        SaltPosition::Suffix => {
            out.extend_from_slice(password);
            out.extend_from_slice(salt.as_bytes());
        }
        SaltPosition::Disable => out.extend_from_slice(password),
    };
    let mut input = Vec::with_capacity(password.len() + salt.len());
    salted(&mut input);
    match algorithm.name {
        HashName::Plain => String::from_utf8_lossy(password).into_owned(),
        HashName::Sha256 => hex(&Sha256::digest(&input)),
        HashName::Sha512 => hex(&Sha512::digest(&input)),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Compare without an early exit, so the time taken does not tell how much matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl BuiltInDatabase {
    /// An empty database configured by `config`.
    pub fn new(config: &AuthnConfig) -> BuiltInDatabase {
        BuiltInDatabase {
            enable: config.enable,
            user_id_type: config.user_id_type,
            algorithm: config.password_hash_algorithm,
            users: RwLock::new(AHashMap::new()),
            kept: None,
        }
    }

    /// Keep the users the API changes in `store` under `chain`, and load those kept
    /// there now (over the bootstrap file's).
    pub fn kept_in(mut self, chain: &str, store: Arc<dyn UserStore>) -> Result<Self, String> {
        {
            let mut users = self.users.write();
            for user in store.load(chain)? {
                users.insert(user.user_id.clone(), user);
            }
        }
        self.kept = Some(Kept {
            chain: chain.to_string(),
            store,
        });
        Ok(self)
    }

    fn keep(&self, user: &User) -> Result<(), String> {
        match &self.kept {
            Some(k) => k.store.put(&k.chain, user),
            None => Ok(()),
        }
    }

    /// One user.
    pub fn user(&self, user_id: &str) -> Option<User> {
        self.users.read().get(user_id).cloned()
    }

    /// Change a user's password and/or superuser flag; the user as changed, or `None`
    /// if there is no such user.
    pub fn update_user(
        &self,
        user_id: &str,
        password: Option<&[u8]>,
        is_superuser: Option<bool>,
    ) -> Result<Option<User>, String> {
        let Some(mut user) = self.user(user_id) else {
            return Ok(None);
        };
        if let Some(password) = password {
            user.salt = self.salt();
            user.password_hash = hash_password(self.algorithm, &user.salt, password);
        }
        if let Some(flag) = is_superuser {
            user.is_superuser = flag;
        }
        self.keep(&user)?;
        self.users
            .write()
            .insert(user.user_id.clone(), user.clone());
        Ok(Some(user))
    }

    /// Import EMQX's user files (CSV with a header line, or a JSON array), kept: new
    /// users are added, existing ones replaced.
    pub fn import(
        &self,
        text: &str,
        json: bool,
        kind: BootstrapType,
    ) -> Result<ImportReport, String> {
        let rows = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            parse_csv(text)?
        };
        let mut report = ImportReport {
            total: rows.len(),
            ..ImportReport::default()
        };
        for row in &rows {
            let Ok(user) = self.user_of_row(row, kind) else {
                report.failed += 1;
                continue;
            };
            let old = self.user(&user.user_id);
            // A plain password is salted anew: only hashed entries can be seen unchanged.
            let same_as_old = kind == BootstrapType::Hash
                && old.as_ref().is_some_and(|o| {
                    o.is_superuser == user.is_superuser
                        && o.password_hash == user.password_hash
                        && o.salt == user.salt
                });
            if same_as_old {
                report.skipped += 1;
                continue;
            }
            self.keep(&user)?;
            self.users.write().insert(user.user_id.clone(), user);
            if old.is_some() {
                report.overridden += 1;
            } else {
                report.success += 1;
            }
        }
        Ok(report)
    }

    fn salt(&self) -> String {
        match (self.algorithm.name, self.algorithm.salt_position) {
            (HashName::Plain, _) | (_, SaltPosition::Disable) => String::new(),
            _ => hex(&rand::random::<[u8; 8]>()),
        }
    }

    /// Add a user with a clear-text password (hashed here). Fails if the user exists.
    pub fn add_user(
        &self,
        user_id: &str,
        password: &[u8],
        is_superuser: bool,
    ) -> Result<(), String> {
        let salt = self.salt();
        let user = User {
            user_id: user_id.to_string(),
            password_hash: hash_password(self.algorithm, &salt, password),
            salt,
            is_superuser,
        };
        self.insert(user, false)
    }

    /// Add a user whose password is already hashed with this database's algorithm.
    pub fn add_hashed(&self, user: User) -> Result<(), String> {
        self.insert(user, false)
    }

    /// Add a user (kept), or fail if it exists.
    fn insert(&self, user: User, replace: bool) -> Result<(), String> {
        if user.user_id.is_empty() {
            return Err("empty user_id".into());
        }
        if !replace && self.users.read().contains_key(&user.user_id) {
            return Err(format!("user {} already exists", user.user_id));
        }
        self.keep(&user)?;
        self.users.write().insert(user.user_id.clone(), user);
        Ok(())
    }

    /// Remove a user (kept). Returns whether it existed.
    pub fn delete_user(&self, user_id: &str) -> Result<bool, String> {
        if let Some(k) = &self.kept {
            k.store.delete(&k.chain, user_id)?;
        }
        Ok(self.users.write().remove(user_id).is_some())
    }

    /// Every user, sorted by id.
    pub fn users(&self) -> Vec<User> {
        let mut all: Vec<User> = self.users.read().values().cloned().collect();
        all.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        all
    }

    /// Load users from an EMQX bootstrap file: CSV with a header line
    /// (`user_id,password,is_superuser` for `plain`, `user_id,password_hash,salt,is_superuser`
    /// for `hash`) or JSON (an array of objects with the same keys). Users already present
    /// are kept.
    pub fn bootstrap(&self, path: &Path, kind: BootstrapType) -> Result<usize, AuthError> {
        let err = |reason: String| AuthError::Bootstrap {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let rows: Vec<std::collections::HashMap<String, serde_json::Value>> = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
        } else {
            parse_csv(&text).map_err(err)?
        };
        let mut added = 0;
        for (n, row) in rows.iter().enumerate() {
            let user = self
                .user_of_row(row, kind)
                .map_err(|e| err(format!("entry {}: {e}", n + 1)))?;
            // The file's users are read at every start: not kept.
            let mut users = self.users.write();
            if !user.user_id.is_empty() && !users.contains_key(&user.user_id) {
                users.insert(user.user_id.clone(), user);
                added += 1;
            }
        }
        Ok(added)
    }

    /// A user from one entry of a user file.
    fn user_of_row(
        &self,
        row: &std::collections::HashMap<String, serde_json::Value>,
        kind: BootstrapType,
    ) -> Result<User, String> {
        let field = |k: &str| -> Option<String> {
            row.get(k).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let need = |k: &str| field(k).ok_or_else(|| format!("no {k}"));
        let user_id = need("user_id")?;
        if user_id.is_empty() {
            return Err("an empty user_id".into());
        }
        let is_superuser = field("is_superuser").is_some_and(|v| v == "true");
        Ok(match kind {
            BootstrapType::Plain => {
                let salt = self.salt();
                let password = need("password")?;
                User {
                    password_hash: hash_password(self.algorithm, &salt, password.as_bytes()),
                    salt,
                    user_id,
                    is_superuser,
                }
            }
            BootstrapType::Hash => User {
                password_hash: need("password_hash")?,
                salt: field("salt").unwrap_or_default(),
                user_id,
                is_superuser,
            },
        })
    }

    fn check(&self, req: Request<'_>) -> AuthnResult {
        let id = match self.user_id_type {
            UserIdType::Username => req.client.username.as_deref(),
            UserIdType::Clientid => Some(&*req.client.clientid),
        };
        let Some(id) = id else {
            return AuthnResult::Ignore;
        };
        let users = self.users.read();
        let Some(user) = users.get(id) else {
            return AuthnResult::Ignore;
        };
        let Some(password) = req.password else {
            return AuthnResult::Deny("bad_username_or_password".into());
        };
        let hashed = hash_password(self.algorithm, &user.salt, password);
        if same(hashed.as_bytes(), user.password_hash.as_bytes()) {
            AuthnResult::Allow {
                is_superuser: user.is_superuser,
                expire_at: None,
            }
        } else {
            AuthnResult::Deny("bad_username_or_password".into())
        }
    }
}

/// A small CSV reader for bootstrap files: a header line, comma-separated fields, no
/// quoting (user ids and hashes have no commas). Blank lines are skipped.
fn parse_csv(
    text: &str,
) -> Result<Vec<std::collections::HashMap<String, serde_json::Value>>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let header: Vec<String> = match lines.next() {
        Some(h) => h.split(',').map(|s| s.trim().to_string()).collect(),
        None => return Ok(Vec::new()),
    };
    if !header.iter().any(|h| h == "user_id") {
        return Err("the header line has no user_id column".into());
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            return Err(format!(
                "line {}: {} fields, the header has {}",
                n + 2,
                fields.len(),
                header.len()
            ));
        }
        rows.push(
            header
                .iter()
                .cloned()
                .zip(
                    fields
                        .iter()
                        .map(|f| serde_json::Value::String(f.to_string())),
                )
                .collect(),
        );
    }
    Ok(rows)
}

impl Authenticator for BuiltInDatabase {
    fn id(&self) -> &'static str {
        "password_based:built_in_database"
    }

    fn enabled(&self) -> bool {
        self.enable
    }

    fn authenticate<'a>(&'a self, req: Request<'a>) -> AuthFuture<'a> {
        let result = self.check(req);
        Box::pin(std::future::ready(result))
    }

    fn builtin(&self) -> Option<&BuiltInDatabase> {
        Some(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use junction_config::authn::{Backend, Mechanism};

    pub(crate) fn config(user_id_type: UserIdType) -> AuthnConfig {
        AuthnConfig {
            mechanism: Mechanism::PasswordBased,
            backend: Backend::BuiltInDatabase,
            enable: true,
            user_id_type,
            password_hash_algorithm: PasswordHashAlgorithm::default(),
            bootstrap_file: None,
            bootstrap_type: BootstrapType::Plain,
        }
    }

    #[test]
    fn sha256_with_a_suffix_salt_matches_the_reference_digest() {
        // sha256("password" ++ "salt"), computed independently with sha256sum.
        let h = hash_password(PasswordHashAlgorithm::default(), "salt", b"password");
        assert_eq!(
            h,
            "7a37b85c8918eac19a9089c0fa5a2ab4dce3f90528dcdeec108b23ddf3607b99"
        );
    }

    #[test]
    fn bootstrap_reads_plain_csv_and_hashed_json() {
        let dir = std::env::temp_dir().join(format!("junction-auth-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("users.csv");
        std::fs::write(
            &csv,
            "user_id,password,is_superuser\nbob,pw,false\n\nroot,toor,true\n",
        )
        .unwrap();
        let db = BuiltInDatabase::new(&config(UserIdType::Username));
        assert_eq!(db.bootstrap(&csv, BootstrapType::Plain).unwrap(), 2);
        let users = db.users();
        assert_eq!(users.len(), 2);
        assert!(users[1].is_superuser);
        assert_ne!(users[0].password_hash, "pw");

        let json = dir.join("users.json");
        let hash = hash_password(PasswordHashAlgorithm::default(), "s1", b"secret");
        std::fs::write(
            &json,
            format!(
                r#"[{{"user_id":"ann","password_hash":"{hash}","salt":"s1","is_superuser":false}}]"#
            ),
        )
        .unwrap();
        assert_eq!(db.bootstrap(&json, BootstrapType::Hash).unwrap(), 1);
        assert_eq!(db.users().len(), 3);

        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "user_id,password,is_superuser\nx,y\n").unwrap();
        let e = db
            .bootstrap(&bad, BootstrapType::Plain)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.csv") && e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clientid_user_ids_and_missing_passwords() {
        let db = BuiltInDatabase::new(&config(UserIdType::Clientid));
        db.add_user("c1", b"pw", false).unwrap();
        assert!(db.add_user("c1", b"other", false).is_err());
        let client = crate::tests::client("tcp:default", None);
        let ok = db.check(Request {
            client: &client,
            password: Some(b"pw"),
        });
        assert!(matches!(ok, AuthnResult::Allow { .. }));
        let none = db.check(Request {
            client: &client,
            password: None,
        });
        assert_eq!(none, AuthnResult::Deny("bad_username_or_password".into()));
        assert!(db.delete_user("c1").unwrap());
        let gone = db.check(Request {
            client: &client,
            password: Some(b"pw"),
        });
        assert_eq!(gone, AuthnResult::Ignore);
    }
}
