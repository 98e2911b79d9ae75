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
mod docs;
pub mod error;
mod extract;
mod gateways;
pub mod kept;
pub mod keys;
mod listener;
pub mod mqtt;
pub mod mqtt_authn;
mod page;
mod prometheus;
mod routes;
pub mod users;

use axum::routing::get;
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
    /// MQTT's authenticator chain.
    pub mqtt_chain: Arc<mqtt_authn::MqttChain>,
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

/// The `/api/v5` routes, built with the OpenAPI document from one table
/// ([`routes::table`]); the document at `/api-docs/openapi.json`, a page that browses it
/// at `/api-docs`.
pub fn router(state: Arc<ApiState>) -> Router {
    use routes::Access;
    let mut ops = routes::table();
    let doc = Arc::new(routes::openapi(&ops, state.prometheus_auth));
    let keyed = routes::routes(&mut ops, Access::Key)
        .fallback(|| async { ApiError::not_found("Request path not found") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    // Scrapers need no key unless `prometheus.enable_basic_auth` says so, as in EMQX.
    let metrics = routes::routes(&mut ops, Access::Metrics);
    let metrics = if state.prometheus_auth {
        metrics.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
    } else {
        metrics
    };
    let open = routes::routes(&mut ops, Access::Open);
    let api = open.merge(metrics).merge(keyed).with_state(state);
    Router::new()
        .nest("/api/v5", api)
        .route(
            "/api-docs/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .route("/api-docs", get(docs::page))
}

/// `POST /configs/reload` (Junction's; EMQX's `emqx ctl conf reload`).
pub(crate) async fn reload(
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
