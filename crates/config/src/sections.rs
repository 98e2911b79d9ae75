//! The small sections: `node`, `broker`, `sys_topics`, `log` and `dashboard`.

use crate::listener::SslOptions;
use crate::units::{auto_or, disabled_or, Bind, Duration};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// This broker node, `node { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name, `<name>@<host>`. Default `"junction@127.0.0.1"`.
    pub name: String,
    /// Directory for persistent data (relative paths are relative to the working
    /// directory). Default `"data"`.
    pub data_dir: PathBuf,
    /// Erlang distribution cookie. Junction has no Erlang distribution: setting it is
    /// refused ("not supported yet"; clustering will come with its own keys). Default
    /// unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// Threads that run connections and routing: `"auto"` (one per CPU) or a number; 1
    /// runs tokio's single-threaded scheduler. A Junction extension (EMQX sets its
    /// schedulers in vm.args). Default `"auto"`.
    #[serde(with = "auto_or")]
    pub worker_threads: Option<u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "junction@127.0.0.1".to_string(),
            data_dir: PathBuf::from("data"),
            cookie: None,
            worker_threads: None,
        }
    }
}

/// Broker internals, `broker { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Whether sessions are registered by client ID so a reconnect takes over the
    /// old session. Default `true`.
    pub enable_session_registry: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            enable_session_registry: true,
        }
    }
}

/// `$SYS` topics, `sys_topics { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SysTopicsConfig {
    /// How often `$SYS/brokers/…` statistics are published; `None` is `"disabled"`.
    /// Default `"1m"`.
    #[serde(with = "disabled_or")]
    pub sys_msg_interval: Option<Duration>,
    /// How often the `$SYS/brokers/<node>/uptime` and `datetime` heartbeat is
    /// published; `None` is `"disabled"`. Default `"30s"`.
    #[serde(with = "disabled_or")]
    pub sys_heartbeat_interval: Option<Duration>,
    /// Which client events are published under `$SYS/brokers/<node>/clients/…`.
    pub sys_event_messages: SysEventMessages,
}

impl Default for SysTopicsConfig {
    fn default() -> Self {
        SysTopicsConfig {
            sys_msg_interval: Some(Duration::from_secs(60)),
            sys_heartbeat_interval: Some(Duration::from_secs(30)),
            sys_event_messages: SysEventMessages::default(),
        }
    }
}

/// Client events published as `$SYS` messages, `sys_topics.sys_event_messages { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SysEventMessages {
    /// Publish `…/clients/<clientid>/connected`. Default `true`.
    pub client_connected: bool,
    /// Publish `…/clients/<clientid>/disconnected`. Default `true`.
    pub client_disconnected: bool,
    /// Publish `…/clients/<clientid>/subscribed`. Default `false`.
    pub client_subscribed: bool,
    /// Publish `…/clients/<clientid>/unsubscribed`. Default `false`.
    pub client_unsubscribed: bool,
}

impl Default for SysEventMessages {
    fn default() -> Self {
        SysEventMessages {
            client_connected: true,
            client_disconnected: true,
            client_subscribed: false,
            client_unsubscribed: false,
        }
    }
}

/// Logging, `log { … }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Logging to standard output. Default: enabled at `warning`.
    pub console: ConsoleLog,
}

/// Console logging, `log.console { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleLog {
    /// Whether log lines are written to standard output. Default `true`.
    pub enable: bool,
    /// Least severe level written. Default `"warning"`.
    pub level: LogLevel,
}

impl Default for ConsoleLog {
    fn default() -> Self {
        ConsoleLog {
            enable: true,
            level: LogLevel::Warning,
        }
    }
}

/// Log severity, least to most severe (syslog levels, as EMQX uses).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Normal but significant.
    Notice,
    /// Something looks wrong.
    #[default]
    Warning,
    /// An operation failed.
    Error,
    /// A component failed.
    Critical,
    /// Action needed now.
    Alert,
    /// The system is unusable.
    Emergency,
}

/// TLS-PSK identities and keys, `psk_authentication { … }` (EMQX's keys): used by DTLS
/// listeners offering PSK suites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PskAuthentication {
    /// Use PSK. Default `false`.
    pub enable: bool,
    /// A file of `<identity><separator><secret>` lines, read at start; the secret's octets
    /// are the key. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_file: Option<String>,
    /// Between identity and secret. Default `":"`.
    pub separator: String,
    /// How many lines EMQX imports at a time (accepted; the file is read whole).
    /// Default `50`.
    pub chunk_size: u32,
}

impl Default for PskAuthentication {
    fn default() -> Self {
        PskAuthentication {
            enable: false,
            init_file: None,
            separator: ":".into(),
            chunk_size: 50,
        }
    }
}

/// Durable state, `durable_sessions { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurableSessionsConfig {
    /// How often queued writes to the data file are committed in one transaction. On a
    /// power loss, what was written in the last interval can be lost; nothing is lost on a
    /// clean stop. Default `"10ms"`.
    pub commit_interval: Duration,
    /// Commit before every acknowledgement of a QoS 1/2 PUBLISH (PUBACK, PUBREC): nothing
    /// acknowledged is lost even on power loss, at the cost of a disk sync per batch of
    /// acknowledgements. Default `false` (batched commits every `commit_interval`).
    pub commit_before_ack: bool,
}

impl Default for DurableSessionsConfig {
    fn default() -> Self {
        DurableSessionsConfig {
            commit_interval: Duration::from_millis(10),
            commit_before_ack: false,
        }
    }
}

/// The HTTP dashboard and management API, `dashboard { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Dashboard listeners. Default: HTTP on `0.0.0.0:18083`.
    pub listeners: DashboardListeners,
    /// The user the first start creates (an administrator). Default `"admin"`.
    pub default_username: String,
    /// That user's password. Default unset: the first start generates one and prints it
    /// once (EMQX's `public` would be a password everybody knows). Only its hash is kept;
    /// once the user exists, changing this key changes nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_password: Option<String>,
    /// How long a token from `POST /api/v5/login` is accepted. Default `"60m"`.
    pub token_expired_time: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            listeners: DashboardListeners::default(),
            default_username: "admin".into(),
            default_password: None,
            token_expired_time: Duration::from_secs(3600),
        }
    }
}

/// Dashboard listeners, `dashboard.listeners { … }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardListeners {
    /// The plain HTTP listener. Default: enabled on `0.0.0.0:18083`.
    pub http: DashboardHttpListener,
    /// The HTTPS listener. Default: disabled, `0.0.0.0:18084` once enabled.
    pub https: DashboardHttpsListener,
}

/// The dashboard's HTTPS listener, `dashboard.listeners.https { … }`: the same API over
/// TLS, beside or instead of the plain one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardHttpsListener {
    /// Whether the HTTPS listener is started. Default `false`; `ssl_options.certfile` and
    /// `keyfile` are then required.
    pub enable: bool,
    /// Address to listen on: a port or `"ip:port"`. Default `18084` (`0.0.0.0:18084`).
    pub bind: Bind,
    /// Connections served at once; more wait in the backlog. Default 512.
    pub max_connections: u32,
    /// TLS settings, the keys of an `ssl` listener's `ssl_options`.
    pub ssl_options: SslOptions,
}

impl Default for DashboardHttpsListener {
    fn default() -> Self {
        DashboardHttpsListener {
            enable: false,
            bind: Bind::any(18084),
            max_connections: 512,
            ssl_options: SslOptions::default(),
        }
    }
}

/// The dashboard's HTTP listener, `dashboard.listeners.http { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardHttpListener {
    /// Whether the HTTP listener (the management API, `/api/v5`) is started. Default
    /// `true`, as EMQX.
    pub enable: bool,
    /// Address to listen on: a port or `"ip:port"`. Default `18083` (`0.0.0.0:18083`).
    pub bind: Bind,
    /// Connections served at once; more wait in the backlog. Default 512.
    pub max_connections: u32,
}

impl Default for DashboardHttpListener {
    fn default() -> Self {
        DashboardHttpListener {
            enable: true,
            bind: Bind::any(18083),
            max_connections: 512,
        }
    }
}

/// `api_key { … }`: keys for the management API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A file of `key:secret[:role]` lines (role `administrator`, the default, or
    /// `viewer`), read at start. Empty: none.
    pub bootstrap_file: String,
}

/// `prometheus { … }`: the metrics endpoint, `GET /api/v5/prometheus/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Ask scrapers for an API key, as every other endpoint does. Default `false`: the
    /// metrics are served without one, as EMQX serves them, so that a scraper needs no
    /// credentials.
    pub enable_basic_auth: bool,
}

/// `authorization { … }` (EMQX's keys): the central authorization sources, checked in
/// order for every publish and subscribe of every protocol (`junction_auth::authz`).
/// Served today: `file` sources (EMQX's `acl.conf`), `no_match`. `deny_action =
/// disconnect` and cache settings other than the defaults are refused by name (a denied
/// request is refused and the connection kept; every check runs the rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Verdict when no source matches: `allow` or `deny`. Default `"allow"`.
    pub no_match: AuthzVerdict,
    /// What a denied client gets: `ignore` (the request is refused) or `disconnect`.
    /// Default `"ignore"`.
    pub deny_action: DenyAction,
    /// Cache of source verdicts per client.
    pub cache: AuthzCache,
    /// Ordered sources (`{type = file, enable = true, path = "acl.conf"}`; a relative
    /// path is read from the configuration file's directory). Without the key, the
    /// default `acl.conf` (EMQX's shipped rules) applies; `sources = []` has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<serde_json::Value>>,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        AuthorizationConfig {
            no_match: AuthzVerdict::Allow,
            deny_action: DenyAction::Ignore,
            cache: AuthzCache::default(),
            sources: None,
        }
    }
}

/// `authorization.no_match`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthzVerdict {
    /// Allowed.
    #[default]
    Allow,
    /// Denied.
    Deny,
}

/// `authorization.deny_action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyAction {
    /// Refuse the request, keep the connection.
    #[default]
    Ignore,
    /// Close the connection.
    Disconnect,
}

/// `authorization.cache { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzCache {
    /// Cache verdicts. Default `true`.
    pub enable: bool,
    /// Most verdicts cached per client. Default `32`.
    pub max_size: u32,
    /// How long a verdict is kept. Default `"1m"`.
    pub ttl: Duration,
    /// Topics never cached. Default `[]`.
    pub excludes: Vec<String>,
}

impl Default for AuthzCache {
    fn default() -> Self {
        AuthzCache {
            enable: true,
            max_size: 32,
            ttl: Duration::from_secs(60),
            excludes: Vec::new(),
        }
    }
}
