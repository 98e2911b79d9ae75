//! Dashboard users: `POST /login` trades a user name and password for a bearer token.
//!
//! There is no known default password. The first start creates the user
//! `dashboard.default_username` with `dashboard.default_password`, or, when that is not
//! set, with a generated password the server prints once; only a PBKDF2 hash is kept.
//! Failed logins are counted per user name: after [`MAX_FAILURES`] in a row, that name is
//! locked for [`LOCK_MS`], whether or not it exists.

use crate::error::ApiError;
use crate::extract::Body;
use crate::kept::Kept;
use crate::keys::{hex, same, Role};
use crate::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Failed logins in a row that lock a user name.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked name stays locked.
pub const LOCK_MS: u64 = 60_000;
/// PBKDF2-HMAC-SHA256 rounds for new passwords.
const ROUNDS: u32 = 60_000;
/// User names whose failures are tracked at once (an attacker trying many names cannot
/// grow the table past this).
const MAX_TRACKED: usize = 10_000;
/// Live tokens at once; the oldest go first past it.
const MAX_TOKENS: usize = 10_000;
/// Shortest password accepted for a change.
const MIN_PASSWORD: usize = 8;

/// One user as kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    username: String,
    salt: String,
    hash: String,
    rounds: u32,
    role: Role,
    description: String,
}

fn hash(password: &str, salt: &str, rounds: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), rounds, &mut out);
    hex(&out)
}

fn random_hex(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex(&raw)
}

impl User {
    fn new(username: &str, password: &str, role: Role, rounds: u32) -> User {
        let salt = random_hex(16);
        User {
            username: username.to_string(),
            hash: hash(password, &salt, rounds),
            salt,
            rounds,
            role,
            description: String::new(),
        }
    }

    fn verify(&self, password: &str) -> bool {
        same(
            hash(password, &self.salt, self.rounds).as_bytes(),
            self.hash.as_bytes(),
        )
    }
}

#[derive(Debug, Clone)]
struct Token {
    username: String,
    role: Role,
    expires_at: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: u64,
}

/// The dashboard users and their tokens.
#[derive(Debug)]
pub struct Users {
    users: RwLock<BTreeMap<String, User>>,
    tokens: Mutex<HashMap<String, Token>>,
    failures: Mutex<HashMap<String, Failures>>,
    kept: Kept,
    token_ttl_ms: u64,
    rounds: u32,
}

impl Default for Users {
    fn default() -> Self {
        Users::new(
            Kept::new(None, junction_store::kv::DASHBOARD_USERS),
            3_600_000,
        )
    }
}

impl Users {
    /// The users kept in `kept`; tokens live `token_ttl_ms`.
    pub fn new(kept: Kept, token_ttl_ms: u64) -> Users {
        Users {
            users: RwLock::new(BTreeMap::new()),
            tokens: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            kept,
            token_ttl_ms,
            rounds: ROUNDS,
        }
    }

    /// Read the kept users; with none, create `username` (an administrator) with
    /// `password`, or with a generated one, which is returned so that it can be shown once.
    pub fn init(&self, username: &str, password: Option<&str>) -> anyhow::Result<Option<String>> {
        let mut users = self.users.write();
        for (name, user) in self.kept.load::<User>()? {
            users.insert(name, user);
        }
        if !users.is_empty() {
            return Ok(None);
        }
        let generated = password.is_none().then(|| random_hex(12));
        let password = password.or(generated.as_deref()).unwrap_or_default();
        let user = User::new(username, password, Role::Administrator, self.rounds);
        self.kept
            .put(username, &user)
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        users.insert(username.to_string(), user);
        Ok(generated)
    }

    /// Check a login; a token and the user's role, or 401.
    fn login(&self, username: &str, password: &str, now: u64) -> Result<(String, Role), ApiError> {
        let failed = |message: String| {
            ApiError::new(StatusCode::UNAUTHORIZED, "BAD_USERNAME_OR_PWD", message)
        };
        if let Some(f) = self.failures.lock().get(username) {
            if f.locked_until > now {
                return Err(failed(format!(
                    "Too many failed logins: try again in {} s",
                    (f.locked_until - now).div_ceil(1000)
                )));
            }
        }
        let user = self.users.read().get(username).cloned();
        // An unknown name costs a hash as well, so that timing does not tell names apart.
        let ok = match &user {
            Some(u) => u.verify(password),
            None => {
                let _ = hash(password, "0000", self.rounds);
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            let mut failures = self.failures.lock();
            if failures.len() >= MAX_TRACKED && !failures.contains_key(username) {
                failures.retain(|_, f| f.locked_until > now);
                if failures.len() >= MAX_TRACKED {
                    failures.clear();
                }
            }
            let f = failures.entry(username.to_string()).or_default();
            f.count += 1;
            if f.count >= MAX_FAILURES {
                f.count = 0;
                f.locked_until = now + LOCK_MS;
            }
            return Err(failed("Auth failed".into()));
        };
        self.failures.lock().remove(username);
        let token = random_hex(32);
        let mut tokens = self.tokens.lock();
        if tokens.len() >= MAX_TOKENS {
            tokens.retain(|_, t| t.expires_at > now);
            if tokens.len() >= MAX_TOKENS {
                if let Some(oldest) = tokens
                    .iter()
                    .min_by_key(|(_, t)| t.expires_at)
                    .map(|(k, _)| k.clone())
                {
                    tokens.remove(&oldest);
                }
            }
        }
        tokens.insert(
            token.clone(),
            Token {
                username: user.username.clone(),
                role: user.role,
                expires_at: now + self.token_ttl_ms,
            },
        );
        Ok((token, user.role))
    }

    /// The user name and role of a bearer token, or 401 (`BAD_TOKEN`, `TOKEN_TIME_OUT`).
    pub fn check_token(&self, token: &str) -> Result<(String, Role), ApiError> {
        let mut tokens = self.tokens.lock();
        let t = tokens.get(token).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "BAD_TOKEN", "Token not found")
        })?;
        if t.expires_at <= junction_types::now_ms() {
            tokens.remove(token);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "TOKEN_TIME_OUT",
                "Token expired, get new token by POST /login",
            ));
        }
        Ok((t.username.clone(), t.role))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

/// `POST /login`.
pub(crate) async fn login(
    State(state): State<Arc<ApiState>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let login: Login =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let users = state.users.clone();
    // The hash takes tens of milliseconds: off the async workers.
    let (token, role) = tokio::task::spawn_blocking(move || {
        users.login(&login.username, &login.password, junction_types::now_ms())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({
        "token": token,
        "role": role.as_str(),
        "version": env!("CARGO_PKG_VERSION"),
        "license": { "edition": "opensource" },
    })))
}

/// `POST /logout`: the request's token ends.
pub(crate) async fn logout(
    State(state): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = crate::auth::bearer(&headers)
        .ok_or_else(|| ApiError::bad_request("log out with the token to end"))?;
    state.users.tokens.lock().remove(token);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users`.
pub(crate) async fn list(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let users = state.users.users.read();
    Json(
        users
            .values()
            .map(|u| {
                json!({
                    "username": u.username,
                    "role": u.role.as_str(),
                    "description": u.description,
                    "backend": "local",
                })
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePwd {
    old_pwd: String,
    new_pwd: String,
}

/// `POST /users/{username}/change_pwd`: the old password proves the change; every token
/// of the user ends.
pub(crate) async fn change_pwd(
    State(state): State<Arc<ApiState>>,
    Path(username): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    let change: ChangePwd =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if change.new_pwd.chars().count() < MIN_PASSWORD {
        return Err(ApiError::bad_request(format!(
            "new_pwd: at least {MIN_PASSWORD} characters"
        )));
    }
    let users = state.users.clone();
    tokio::task::spawn_blocking(move || {
        let current = users
            .users
            .read()
            .get(&username)
            .cloned()
            .ok_or_else(|| ApiError::not_found("User not found"))?;
        if !current.verify(&change.old_pwd) {
            return Err(ApiError::bad_request("old_pwd: wrong password"));
        }
        let mut user = User::new(&username, &change.new_pwd, current.role, users.rounds);
        user.description = current.description;
        users.kept.put(&username, &user)?;
        users.users.write().insert(username.clone(), user);
        users.tokens.lock().retain(|_, t| t.username != username);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        // Debug builds: keep the tests quick.
        Users {
            rounds: 2,
            ..Users::default()
        }
    }

    #[test]
    fn the_first_start_generates_a_password_unless_one_is_configured() {
        let u = users();
        let generated = u.init("admin", None).unwrap().expect("generated");
        assert_eq!(generated.len(), 24);
        assert!(u.login("admin", "public", 0).is_err());
        let now = junction_types::now_ms();
        let (token, role) = u.login("admin", &generated, now).unwrap();
        assert_eq!(role, Role::Administrator);
        assert_eq!(u.check_token(&token).unwrap().0, "admin");

        let u = users();
        assert_eq!(u.init("root", Some("configured-pw")).unwrap(), None);
        assert!(u.login("root", "configured-pw", 0).is_ok());
    }

    #[test]
    fn five_failures_lock_a_name_for_a_minute_known_or_not() {
        let u = users();
        u.init("admin", Some("right-password")).unwrap();
        for name in ["admin", "nobody"] {
            for _ in 0..MAX_FAILURES {
                assert_eq!(
                    u.login(name, "wrong", 1000).unwrap_err().message,
                    "Auth failed"
                );
            }
        }
        let e = u.login("admin", "right-password", 1000).unwrap_err();
        assert!(e.message.contains("try again in 60 s"), "{}", e.message);
        assert!(u
            .login("nobody", "x", 1000)
            .unwrap_err()
            .message
            .contains("try again"));
        // Unlocked after the minute.
        assert!(u.login("admin", "right-password", 1000 + LOCK_MS).is_ok());
    }

    #[test]
    fn unknown_and_expired_tokens_are_refused_with_emqx_codes() {
        let u = users();
        assert_eq!(u.check_token("nope").unwrap_err().code, "BAD_TOKEN");
        u.init("admin", Some("pw-pw-pw-pw")).unwrap();
        // Logged in at the epoch: long expired.
        let (token, _) = u.login("admin", "pw-pw-pw-pw", 0).unwrap();
        assert_eq!(u.check_token(&token).unwrap_err().code, "TOKEN_TIME_OUT");
    }
}
