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
pub mod listener;
mod lwm2m;
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
    /// The MQTT listeners, as they run now.
    pub mqtt_listeners: Arc<parking_lot::RwLock<Vec<mqtt::MqttListener>>>,
    /// MQTT's authenticator chain.
    pub mqtt_chain: Arc<mqtt_authn::MqttChain>,
    /// Re-reads the config file (`None`: the server was started without one).
    pub reload: Option<Reloader>,
}

/// One listener of the API: `dashboard.listeners.http` or `.https`.
pub struct ApiListener {
    /// `"http"` or `"https"`.
    pub name: &'static str,
    /// The address to bind.
    pub bind: SocketAddr,
    /// Connections served at once.
    pub max_connections: usize,
    /// TLS, for `https`.
    pub tls: Option<listener::Tls>,
}

/// The running API listeners.
#[derive(Debug)]
pub struct ApiHandle {
    /// Each listener's id (`dashboard:http`, `dashboard:https`) and bound address.
    pub local_addrs: Vec<(String, SocketAddr)>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ApiHandle {
    /// Stop accepting and finish the requests in progress.
    pub async fn shutdown(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            let _ = task.await;
        }
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

/// Serve the API on each of `listeners`. Every address is bound before any serves, so
/// a busy port fails the start as a whole, naming the listener.
pub async fn start(listeners: Vec<ApiListener>, state: ApiState) -> anyhow::Result<ApiHandle> {
    use anyhow::Context;
    let mut bound = Vec::new();
    for l in listeners {
        let tcp = tokio::net::TcpListener::bind(l.bind)
            .await
            .with_context(|| format!("dashboard.listeners.{}.bind: {}", l.name, l.bind))?;
        let addr = tcp.local_addr()?;
        bound.push((
            l.name,
            addr,
            listener::Bounded::new(tcp, l.max_connections, l.tls),
        ));
    }
    let app = router(Arc::new(state));
    let mut handle = ApiHandle {
        local_addrs: Vec::new(),
        stops: Vec::new(),
        tasks: Vec::new(),
    };
    for (name, addr, listener) in bound {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = app.clone();
        handle.tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, listener = name, "management API stopped");
            }
        }));
        handle.stops.push(stop);
        handle.local_addrs.push((format!("dashboard:{name}"), addr));
    }
    Ok(handle)
}
