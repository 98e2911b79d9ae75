//! The Junction server: wires the configuration, the broker and the listeners together.
//!
//! The `junction` binary is a thin command line over [`Server`]; integration tests start a
//! [`Server`] on port 0 the same way.

mod changes;
mod durable;
pub mod gateways;
mod mqtt_listeners;
mod users;

use anyhow::Context;
use durable::{Durable, DurableOptions};
use junction_auth::AuthnChains;
use junction_broker::{Broker, BrokerSettings, KickReason, SharedStrategy};
use junction_config::{Config, ListenerKind as CfgKind, SharedSubscriptionStrategy};
use junction_gateway::listener_opts::{
    access_list, apply_proxy_protocol, apply_ssl_options, apply_tcp_options,
};
use junction_gateway::{CommonSettings, GatewayAdmin, GatewayCtx, GatewayEnv, Registry};
use junction_gw_mqtt::MqttSettings;
use junction_session::SessionLimits;
use junction_store::Store;
use junction_transport::{ListenerKind, ListenerOptions, OriginCheck, WsOptions};
use junction_types::QoS;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The broker.
    pub broker: Arc<Broker>,
    /// Every authentication chain (MQTT, gateways, listeners).
    pub authn: Arc<AuthnChains>,
    /// The MQTT listeners' context.
    mqtt: Arc<GatewayCtx>,
    durable: Durable,
    listeners: Arc<mqtt_listeners::MqttListeners>,
    /// The gateways this server runs, changed at run time through the API.
    gateways: Arc<GatewayAdmin>,
    /// The management API, when `dashboard.listeners.http` is enabled.
    api: Option<junction_api::ApiHandle>,
    /// MQTT's authenticator chain, as the API changes it.
    mqtt_chain: Arc<junction_api::mqtt_authn::MqttChain>,
}

impl Server {
    /// Start everything the configuration enables, with every gateway Junction ships
    /// ([`gateways::registry`]).
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        Self::start_with(config, gateways::registry()).await
    }

    /// Start everything the configuration enables, with the gateways of `gateways`.
    pub async fn start_with(config: &Config, gateways: Registry) -> anyhow::Result<Server> {
        Self::start_from(config, None, gateways).await
    }

    /// Start from a config file's configuration (`path`, `None` for the built-in
    /// defaults): `POST /api/v5/configs/reload` reads it again.
    pub async fn start_from(
        config: &Config,
        path: Option<std::path::PathBuf>,
        gateways: Registry,
    ) -> anyhow::Result<Server> {
        // Every section read and every address checked before anything binds.
        gateways.check(config)?;
        let broker = Broker::new(broker_settings(config));
        let mqtt = mqtt_settings(config);
        let durable = Durable::open(
            DurableOptions {
                data_dir: &config.node.data_dir,
                commit_interval: config.durable_sessions.commit_interval.into(),
                commit_before_ack: config.durable_sessions.commit_before_ack,
                limits: mqtt.session,
            },
            &broker,
        )?;
        broker.start_sys();
        // Central authorization: the `file` sources (or the default acl.conf), for every
        // protocol through `client.authorize`. A relative path is read from the
        // configuration file's directory.
        let base = path
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        Arc::new(junction_auth::authz::Authorization::from_config(
            &config.authorization,
            base,
        )?)
        .install(&broker.hooks);
        let authn = Arc::new(AuthnChains::default());
        authn.set_user_store(Arc::new(users::StoredUsers(durable.store.clone())));
        // The file's chain, or the one the API changed and the data file keeps.
        let mqtt_chain = Arc::new(junction_api::mqtt_authn::MqttChain::start(
            authn.clone(),
            &config.authentication,
            junction_api::kept::Kept::new(
                Some(durable.store.clone()),
                junction_store::kv::CONFIG_CHANGES,
            ),
        )?);
        let mqtt = Arc::new(mqtt);
        let mqtt_ctx = GatewayCtx::mqtt(
            broker.clone(),
            CommonSettings {
                idle_timeout: mqtt.idle_timeout,
                session: mqtt.session,
                ..CommonSettings::default()
            },
            authn.clone(),
        );
        let listeners = Arc::new(
            mqtt_listeners::MqttListeners::start(
                config,
                mqtt.clone(),
                mqtt_ctx.clone(),
                authn.clone(),
            )
            .await?,
        );
        let gateway_env = GatewayEnv {
            broker: broker.clone(),
            authn: authn.clone(),
            session: mqtt.session,
            psk: psk_table(config)?,
        };
        // The file's gateways with the changes kept in the data file applied over them.
        let changes = Arc::new(changes::StoredChanges(durable.store.clone()));
        let gateways =
            GatewayAdmin::start(Arc::new(gateways), gateway_env, config, Some(changes)).await?;
        let mut server = Server {
            broker,
            authn,
            mqtt: mqtt_ctx,
            durable,
            listeners,
            gateways: Arc::new(gateways),
            api: None,
            mqtt_chain,
        };
        server.api = start_api(config, path, &server).await?;
        Ok(server)
    }

    /// Load, update or unload every gateway to match `config`, a new version of the file
    /// (run-time changes keep live connections; see
    /// [`junction_gateway::GatewayRunner::update`]). Changes made through the API still
    /// apply over it.
    pub async fn update_gateways(&self, config: &Config) -> anyhow::Result<()> {
        Ok(self.gateways.reload(config).await?)
    }

    /// The context of a loaded gateway (clients, counters).
    pub async fn gateway(&self, name: &str) -> Option<Arc<junction_gateway::GatewayCtx>> {
        self.gateways.registry().gateway(name).await
    }

    /// The gateways, as the management API changes them.
    pub fn gateway_admin(&self) -> &Arc<GatewayAdmin> {
        &self.gateways
    }

    /// The context of the MQTT listeners (their clients; counters are the broker's).
    pub fn mqtt(&self) -> &Arc<GatewayCtx> {
        &self.mqtt
    }

    /// The gateways this server runs.
    pub fn registry(&self) -> &Registry {
        self.gateways.registry()
    }

    /// The address a listener (`"tcp:default"`, `"ws:default"`, `"<gateway>:<type>:<name>"`, …)
    /// is bound to.
    pub fn local_addr(&self, id: &str) -> Option<SocketAddr> {
        self.listeners()
            .into_iter()
            .find(|(l, _)| l == id)
            .map(|(_, a)| a)
    }

    /// Every listener, MQTT and gateways, with its bound address.
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        let mut all = self.listeners.addresses();
        all.extend(self.gateways.registry().listeners());
        if let Some(api) = &self.api {
            all.extend(api.local_addrs.iter().cloned());
        }
        all
    }

    /// The data file.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.durable.store
    }

    /// Write every changed session to the data file and commit, now (what the commit
    /// thread does every `durable_sessions.commit_interval`).
    pub fn persist_now(&self) -> Result<(), junction_store::StoreError> {
        self.durable.persister.flush()
    }

    /// Sweep expired sessions and messages and unreferenced messages out of the data
    /// file, now (what the sweeper does every minute).
    pub fn sweep_now(&self) -> Result<junction_store::SweepReport, junction_store::StoreError> {
        self.durable.persister.sweep(junction_types::now_ms())
    }

    /// Stop accepting and disconnect every client (5.0 clients get reason 0x8B).
    pub async fn shutdown(self) {
        if let Some(api) = self.api {
            api.shutdown().await;
        }
        self.listeners.stop().await;
        self.gateways.registry().unload_all().await;
        self.broker.kick_all(KickReason::Shutdown);
        // Give connection tasks a moment to say goodbye.
        for _ in 0..50 {
            if self.broker.metrics.connections_count.get() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The last flush: sessions as their connections left them.
        self.durable.stop();
    }
}

/// The management API on `dashboard.listeners.http`: API keys kept in the data file plus
/// those of `api_key.bootstrap_file`; dashboard users, the first of which is created on
/// the first start.
async fn start_api(
    config: &Config,
    path: Option<std::path::PathBuf>,
    server: &Server,
) -> anyhow::Result<Option<junction_api::ApiHandle>> {
    use junction_api::kept::Kept;
    use junction_store::kv;
    let listeners = &config.dashboard.listeners;
    if !listeners.http.enable && !listeners.https.enable {
        return Ok(None);
    }
    let store = Some(server.durable.store.clone());
    let keys = junction_api::keys::ApiKeys::new(Kept::new(store.clone(), kv::API_KEYS));
    keys.load()?;
    let file = &config.api_key.bootstrap_file;
    if !file.is_empty() {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("api_key.bootstrap_file: {file}"))?;
        keys.bootstrap(&text)
            .map_err(|e| anyhow::anyhow!("api_key.bootstrap_file: {file}: {e}"))?;
    }
    let dashboard = &config.dashboard;
    let users = junction_api::users::Users::new(
        Kept::new(store, kv::DASHBOARD_USERS),
        dashboard.token_expired_time.as_millis(),
    );
    if let Some(password) = users.init(
        &dashboard.default_username,
        dashboard.default_password.as_deref(),
    )? {
        // Shown this once; only its hash is kept.
        eprintln!(
            "junction: created dashboard user {} with password {password} (shown once; change it with POST /api/v5/users/{}/change_pwd)",
            dashboard.default_username, dashboard.default_username
        );
    }
    let state = junction_api::ApiState {
        keys,
        users: Arc::new(users),
        mqtt: server.mqtt.clone(),
        gateways: server.gateways.clone(),
        node: server.broker.settings.node_name.clone(),
        prometheus_auth: config.prometheus.enable_basic_auth,
        reload: Some(reloader(config, path, server)),
        mqtt_chain: server.mqtt_chain.clone(),
        mqtt_listeners: server.listeners.listed(),
    };
    let handle = junction_api::start(api_listeners(config)?, state).await?;
    for (id, addr) in &handle.local_addrs {
        tracing::info!(listener = %id, %addr, "management API listening");
    }
    Ok(Some(handle))
}

/// The API's enabled listeners: `dashboard.listeners.http` and `.https`, the latter with
/// its `ssl_options` read as an `ssl` listener's.
fn api_listeners(config: &Config) -> anyhow::Result<Vec<junction_api::ApiListener>> {
    let (http, https) = (
        &config.dashboard.listeners.http,
        &config.dashboard.listeners.https,
    );
    let mut listeners = Vec::new();
    if http.enable {
        listeners.push(junction_api::ApiListener {
            name: "http",
            bind: http.bind.addr(),
            max_connections: http.max_connections as usize,
            tls: None,
        });
    }
    if https.enable {
        let path = "dashboard.listeners.https";
        let mut opts = ListenerOptions::new(path, ListenerKind::Ssl, https.bind.addr());
        apply_ssl_options(&mut opts, &https.ssl_options, path)?;
        let tls = opts.tls.as_ref().context("ssl_options")?;
        let server = junction_transport::load_server_config(tls)
            .map_err(|e| anyhow::anyhow!("{path}.ssl_options.{e}"))?;
        listeners.push(junction_api::ApiListener {
            name: "https",
            bind: https.bind.addr(),
            max_connections: https.max_connections as usize,
            tls: Some(junction_api::listener::Tls {
                acceptor: Arc::new(server).into(),
                handshake_timeout: opts.handshake_timeout,
            }),
        });
    }
    Ok(listeners)
}

/// `POST /api/v5/configs/reload`: read the file and the environment again and apply what
/// can change on a running server:
/// - `gateway`: every gateway reconciled (changes made through the API still apply over
///   the file);
/// - `listeners`: MQTT listeners added, changed, removed (see [`mqtt_listeners`]);
/// - `mqtt`: for the connections accepted from now on, unless the change touches what the
///   broker or the sessions already hold (QoS upgrade, shared subscription strategy,
///   queue and in-flight limits, …);
/// - `authentication`: MQTT's chain, unless the API replaced it (the kept chain wins, as
///   at a start).
///
/// Any other section that changed is named as needing a restart, and is reported again on
/// each reload until then.
fn reloader(
    config: &Config,
    path: Option<std::path::PathBuf>,
    server: &Server,
) -> junction_api::Reloader {
    let running = Arc::new(tokio::sync::Mutex::new(config.clone()));
    let (gateways, listeners, chain) = (
        server.gateways.clone(),
        server.listeners.clone(),
        server.mqtt_chain.clone(),
    );
    Arc::new(move || {
        let (path, running) = (path.clone(), running.clone());
        let (gateways, listeners, chain) = (gateways.clone(), listeners.clone(), chain.clone());
        Box::pin(async move {
            let new = Config::load(path.as_deref(), std::env::vars())
                .map_err(|e| format!("configuration: {e}"))?;
            let mut running = running.lock().await;
            let mut applied: Vec<&str> = Vec::new();
            if new.gateway != running.gateway {
                gateways.reload(&new).await.map_err(|e| e.to_string())?;
                running.gateway = new.gateway.clone();
                applied.push("gateway");
            }
            // `mqtt.*` as a new connection reads it, if nothing else depends on it.
            let mqtt_applies = broker_settings(&new) == broker_settings(&running)
                && mqtt_settings(&new).session == mqtt_settings(&running).session;
            let mqtt_now = if mqtt_applies { &new } else { &*running };
            if new.listeners != running.listeners || (mqtt_applies && new.mqtt != running.mqtt) {
                let mut target = new.clone();
                target.mqtt = mqtt_now.mqtt.clone();
                listeners
                    .reconcile(&target, Arc::new(mqtt_settings(&target)))
                    .await
                    .map_err(|e| format!("listeners: {e:#}"))?;
                if new.listeners != running.listeners {
                    running.listeners = new.listeners.clone();
                    applied.push("listeners");
                }
                if new.mqtt != running.mqtt {
                    running.mqtt = new.mqtt.clone();
                    applied.push("mqtt");
                }
            }
            if new.authentication != running.authentication {
                if chain
                    .reload_file(&new.authentication)
                    .map_err(|e| e.to_string())?
                {
                    applied.push("authentication");
                }
                running.authentication = new.authentication.clone();
            }
            let sections = |c: &Config| serde_json::to_value(c).unwrap_or_default();
            let (old, now) = (sections(&running), sections(&new));
            let mut restart: Vec<String> = Vec::new();
            if let (Some(old), Some(now)) = (old.as_object(), now.as_object()) {
                for (key, value) in now {
                    if old.get(key) != Some(value) {
                        restart.push(key.clone());
                    }
                }
            }
            Ok(serde_json::json!({ "applied": applied, "restart_needed": restart }))
        })
    })
}

/// `psk_authentication`: the identities of `init_file`, or `None` when PSK is off.
fn psk_table(
    config: &Config,
) -> anyhow::Result<Option<Arc<junction_gateway::driver::dtls::PskTable>>> {
    let psk = &config.psk_authentication;
    if !psk.enable {
        return Ok(None);
    }
    let table = match &psk.init_file {
        Some(file) => junction_gateway::driver::dtls::read_psk_file(
            std::path::Path::new(file),
            &psk.separator,
        )
        .with_context(|| format!("psk_authentication.init_file {file}"))?,
        None => Default::default(),
    };
    Ok(Some(Arc::new(table)))
}

fn broker_settings(config: &Config) -> BrokerSettings {
    let sys = &config.sys_topics;
    BrokerSettings {
        node_name: config.node.name.clone(),
        shared_strategy: match config.mqtt.shared_subscription_strategy {
            SharedSubscriptionStrategy::Random => SharedStrategy::Random,
            SharedSubscriptionStrategy::RoundRobin => SharedStrategy::RoundRobin,
            SharedSubscriptionStrategy::RoundRobinPerGroup => SharedStrategy::RoundRobinPerGroup,
            SharedSubscriptionStrategy::Sticky => SharedStrategy::Sticky,
            SharedSubscriptionStrategy::Local => SharedStrategy::Local,
            SharedSubscriptionStrategy::HashTopic => SharedStrategy::HashTopic,
            SharedSubscriptionStrategy::HashClientid => SharedStrategy::HashClientid,
        },
        upgrade_qos: config.mqtt.upgrade_qos,
        ignore_loop_deliver: config.mqtt.ignore_loop_deliver,
        sys_msg_interval: sys.sys_msg_interval.map(|d| d.as_std()),
        sys_heartbeat_interval: sys.sys_heartbeat_interval.map(|d| d.as_std()),
        sys_event_client_connected: sys.sys_event_messages.client_connected,
        sys_event_client_disconnected: sys.sys_event_messages.client_disconnected,
        sys_event_client_subscribed: sys.sys_event_messages.client_subscribed,
        sys_event_client_unsubscribed: sys.sys_event_messages.client_unsubscribed,
        max_outbox_qos0: config
            .mqtt
            .max_mqueue_len
            .map_or(10_000, |n| (n as usize).max(1000)),
        max_outbox_bytes: config.mqtt.max_outbox_bytes.as_u64().min(usize::MAX as u64) as usize,
        topic_limits: junction_topic::TopicLimits {
            max_levels: config.mqtt.max_topic_levels as usize,
        },
    }
}

fn mqtt_settings(config: &Config) -> MqttSettings {
    let m = &config.mqtt;
    MqttSettings {
        max_packet_size: m.max_packet_size.as_u64().min(u32::MAX as u64) as u32,
        max_clientid_len: m.max_clientid_len as usize,
        max_topic_levels: m.max_topic_levels as usize,
        max_qos_allowed: QoS::from_u8(m.max_qos_allowed).unwrap_or(QoS::ExactlyOnce),
        max_topic_alias: m.max_topic_alias,
        retain_available: m.retain_available,
        wildcard_subscription: m.wildcard_subscription,
        shared_subscription: m.shared_subscription,
        idle_timeout: m.idle_timeout.as_std(),
        keepalive_multiplier: m.keepalive_multiplier,
        server_keepalive: m.server_keepalive,
        session_expiry_interval_v3: m.session_expiry_interval.as_secs().min(u32::MAX as u64) as u32,
        max_subscriptions: m.max_subscriptions.map(|n| n as usize),
        session: SessionLimits {
            max_inflight: m.max_inflight.max(1),
            max_mqueue_len: m.max_mqueue_len.map_or(0, |n| n as usize),
            mqueue_store_qos0: m.mqueue_store_qos0,
            retry_interval_ms: m.retry_interval.as_millis(),
            max_awaiting_rel: m.max_awaiting_rel.map_or(0, |n| n as usize),
            await_rel_timeout_ms: m.await_rel_timeout.as_millis(),
        },
        response_information: m.response_information.clone(),
        message_expiry_interval: m
            .message_expiry_interval
            .map(|d| d.as_secs().min(u32::MAX as u64) as u32),
        mountpoint: String::new(),
        use_username_as_clientid: m.use_username_as_clientid,
    }
}

fn listener_options(
    kind: CfgKind,
    name: &str,
    l: &junction_config::Listener,
    max_packet_size: u32,
) -> anyhow::Result<ListenerOptions> {
    let tkind = match kind {
        CfgKind::Tcp => ListenerKind::Tcp,
        CfgKind::Ssl => ListenerKind::Ssl,
        CfgKind::Ws => ListenerKind::Ws,
        CfgKind::Wss => ListenerKind::Wss,
    };
    let id = format!("{}:{}", kind.as_str(), name);
    let mut opts = ListenerOptions::new(id.clone(), tkind, l.bind.0);
    opts.max_connections = l.max_connections.map(|n| n as usize);
    opts.max_conn_rate = l.max_conn_rate.map(|n| n.min(u32::MAX as u64) as u32);
    apply_tcp_options(&mut opts, &l.tcp_options);
    opts.access = access_list(&l.access_rules);
    apply_proxy_protocol(&mut opts, l.proxy_protocol, l.proxy_protocol_timeout);
    if let Some(ssl) = &l.ssl_options {
        apply_ssl_options(
            &mut opts,
            ssl,
            &format!("listeners.{}.{name}", kind.as_str()),
        )?;
    }
    if let Some(ws) = &l.websocket {
        opts.ws = WsOptions {
            path: ws.mqtt_path.clone(),
            subprotocols: ws.subprotocols().map(String::from).collect(),
            fail_if_no_subprotocol: ws.fail_if_no_subprotocol,
            max_frame_size: ws
                .max_frame_size
                .map(|b| b.as_u64().min(usize::MAX as u64) as usize),
            max_message_size: max_packet_size as usize,
            check_origin: ws.check_origin_enable.then(|| OriginCheck {
                origins: ws.origins().map(String::from).collect(),
                allow_absence: ws.allow_origin_absence,
            }),
            proxy_address_header: ws.proxy_address_header.to_ascii_lowercase(),
            proxy_port_header: ws.proxy_port_header.to_ascii_lowercase(),
        };
        // The upgrade is part of the handshake: it ends by `websocket.idle_timeout` too.
        opts.handshake_timeout = opts.handshake_timeout.min(ws.idle_timeout.as_std());
    }
    Ok(opts)
}
