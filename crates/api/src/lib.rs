//! Junction's management HTTP API: EMQX's `/api/v5` paths, JSON shapes and error codes,
//! on `dashboard.listeners.http`, behind API keys (HTTP Basic, see [`auth`]).
//!
//! Served so far: the gateways and their listeners (`/gateways`, changed at run time and
//! kept, see [`junction_gateway::GatewayAdmin`]), and the clients of MQTT (`/clients`) and
//! of every gateway (`/gateways/{name}/clients`): list with filters and pages, look up,
//! kick, and list a client's subscriptions.

mod auth;
mod authn;
mod clients;
pub mod error;
mod extract;
mod gateways;
pub mod kept;
pub mod keys;
mod listener;
pub mod mqtt;
mod page;
mod prometheus;
pub mod users;

use axum::routing::{get, post, put};
use axum::Router;
use error::ApiError;
use junction_gateway::{GatewayAdmin, GatewayCtx};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Re-read the config file and apply it (`POST /configs/reload`): what was applied and
/// what needs a restart, or why it could not be read or applied.
pub type Reloader = Arc<
    dyn Fn() -> junction_gateway::BoxFuture<'static, Result<serde_json::Value, String>>
        + Send
        + Sync,
>;

/// What the API reads and acts on.
pub struct ApiState {
    /// The accepted API keys.
    pub keys: keys::ApiKeys,
    /// The dashboard users.
    pub users: Arc<users::Users>,
    /// The MQTT listeners' context.
    pub mqtt: Arc<GatewayCtx>,
    /// The gateways.
    pub gateways: Arc<GatewayAdmin>,
    /// This node's name (`node` in client objects).
    pub node: String,
    /// `prometheus.enable_basic_auth`: scrapers need an API key.
    pub prometheus_auth: bool,
    /// The MQTT listeners.
    pub mqtt_listeners: Vec<mqtt::MqttListener>,
    /// MQTT's authenticators as configured (`authentication`).
    pub mqtt_authn: Vec<serde_json::Value>,
    /// Re-reads the config file (`None`: the server was started without one).
    pub reload: Option<Reloader>,
}

/// The running API listener.
#[derive(Debug)]
pub struct ApiHandle {
    /// The bound address.
    pub local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ApiHandle {
    /// Stop accepting and finish the requests in progress.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The `/api/v5` routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .route("/clients", get(clients::list_mqtt))
        .route(
            "/clients/{clientid}",
            get(clients::get_mqtt).delete(clients::kick_mqtt),
        )
        .route(
            "/clients/{clientid}/subscriptions",
            get(clients::subscriptions_mqtt),
        )
        .route(
            "/clients/{clientid}/subscribe",
            post(clients::subscribe_mqtt),
        )
        .route(
            "/clients/{clientid}/unsubscribe",
            post(clients::unsubscribe_mqtt),
        )
        .route("/logout", post(users::logout))
        .route("/users", get(users::list))
        .route("/users/{username}/change_pwd", post(users::change_pwd))
        .route("/api_key", get(keys::list).post(keys::create))
        .route(
            "/api_key/{name}",
            get(keys::get).put(keys::update).delete(keys::delete),
        )
        .route("/stats", get(mqtt::stats))
        .route("/metrics", get(mqtt::metrics))
        .route("/nodes", get(mqtt::nodes))
        .route("/nodes/{node}", get(mqtt::node))
        .route("/listeners", get(mqtt::listeners))
        .route("/subscriptions", get(mqtt::subscriptions))
        .route("/topics", get(mqtt::topics))
        .route("/publish", post(mqtt::publish))
        .route("/publish/bulk", post(mqtt::publish_bulk))
        .route("/mqtt/retainer/messages", get(mqtt::retained_list))
        .route(
            "/mqtt/retainer/message/{topic}",
            get(mqtt::retained_get).delete(mqtt::retained_delete),
        )
        .route("/configs/reload", post(reload))
        .route("/gateway_registry", get(gateways::registry))
        .route("/gateways", get(gateways::list).post(gateways::post))
        .route(
            "/gateways/{name}",
            get(gateways::get)
                .put(gateways::put)
                .delete(gateways::unload),
        )
        .route("/gateways/{name}/metrics", get(gateways::metrics))
        .route(
            "/gateways/{name}/authentication",
            get(authn::get)
                .post(authn::create)
                .put(authn::update)
                .delete(authn::delete),
        )
        .route(
            "/gateways/{name}/authentication/users",
            get(authn::users).post(authn::add_user),
        )
        .route(
            "/gateways/{name}/authentication/users/{uid}",
            get(authn::user)
                .put(authn::update_user)
                .delete(authn::delete_user),
        )
        .route(
            "/gateways/{name}/authentication/import_users",
            post(authn::import_users),
        )
        .route(
            "/gateways/{name}/listeners/{id}/authentication",
            get(authn::listener_get)
                .post(authn::listener_create)
                .put(authn::listener_update)
                .delete(authn::listener_delete),
        )
        .route(
            "/gateways/{name}/listeners/{id}/authentication/users",
            get(authn::listener_users).post(authn::listener_add_user),
        )
        .route(
            "/gateways/{name}/listeners/{id}/authentication/users/{uid}",
            get(authn::listener_user)
                .put(authn::listener_update_user)
                .delete(authn::listener_delete_user),
        )
        .route(
            "/gateways/{name}/listeners/{id}/authentication/import_users",
            post(authn::listener_import_users),
        )
        .route("/authentication", get(authn::mqtt_chain))
        .route(
            "/authentication/{id}/users",
            get(authn::mqtt_users).post(authn::mqtt_add_user),
        )
        .route(
            "/authentication/{id}/users/{uid}",
            get(authn::mqtt_user)
                .put(authn::mqtt_update_user)
                .delete(authn::mqtt_delete_user),
        )
        .route(
            "/authentication/{id}/import_users",
            post(authn::mqtt_import_users),
        )
        .route("/gateways/{name}/enable/{enable}", put(gateways::enable))
        .route(
            "/gateways/{name}/listeners",
            get(gateways::listeners).post(gateways::add_listener),
        )
        .route(
            "/gateways/{name}/listeners/{id}",
            get(gateways::get_listener)
                .put(gateways::update_listener)
                .delete(gateways::delete_listener),
        )
        .route("/gateways/{name}/clients", get(clients::list))
        .route(
            "/gateways/{name}/clients/{clientid}",
            get(clients::get).delete(clients::kick),
        )
        .route(
            "/gateways/{name}/clients/{clientid}/subscriptions",
            get(clients::subscriptions).post(clients::add_subscription),
        )
        .route(
            "/gateways/{name}/clients/{clientid}/subscriptions/{topic}",
            axum::routing::delete(clients::delete_subscription),
        )
        .fallback(|| async { ApiError::not_found("Request path not found") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    // Scrapers need no key unless `prometheus.enable_basic_auth` says so, as in EMQX.
    let metrics = Router::new().route("/prometheus/stats", get(prometheus::stats));
    let metrics = if state.prometheus_auth {
        metrics.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
    } else {
        metrics
    };
    let open = Router::new()
        .route("/login", post(users::login))
        .route("/status", get(mqtt::status));
    Router::new().nest("/api/v5", open.merge(metrics).merge(api).with_state(state))
}

/// `POST /configs/reload` (Junction's; EMQX's `emqx ctl conf reload`).
async fn reload(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let Some(reload) = &state.reload else {
        return Err(ApiError::bad_request(
            "the server was started without a config file",
        ));
    };
    reload()
        .await
        .map(axum::Json)
        .map_err(ApiError::bad_request)
}

/// Listen on `bind` and serve the API to at most `max_connections` connections at once.
pub async fn start(
    bind: SocketAddr,
    max_connections: usize,
    state: ApiState,
) -> anyhow::Result<ApiHandle> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let local_addr = listener.local_addr()?;
    let listener = listener::Bounded::new(listener, max_connections);
    let app = router(Arc::new(state));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "management API stopped");
        }
    });
    Ok(ApiHandle {
        local_addr,
        stop,
        task,
    })
}
