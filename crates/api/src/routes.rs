//! The one table of the API's operations: the router and the OpenAPI document
//! (`/api-docs/openapi.json`) are both built from it, so that neither can list an
//! operation the other lacks.

use crate::{authn, clients, gateways, keys, lwm2m, mqtt, mqtt_authn, prometheus, users, ApiState};
use axum::routing::{delete, get, post, put, MethodRouter};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone (`/login`, `/status`).
    Open,
    /// Anyone unless `prometheus.enable_basic_auth` (`/prometheus/stats`).
    Metrics,
    /// An API key or a dashboard token; viewers only read.
    Key,
}

/// A query parameter: name and JSON type (`string`, `integer`, `boolean`).
type Param = (&'static str, &'static str);

/// One operation: its route and what the document says of it.
pub(crate) struct Op {
    method: &'static str,
    path: String,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    query: &'static [Param],
    /// The request body: `Some("json")`, `Some("multipart")` or none.
    body: Option<&'static str>,
    /// Success codes, then the error codes it answers with.
    codes: &'static [u16],
    handler: MethodRouter<Arc<ApiState>>,
}

const CLIENT_QUERY: &[Param] = &[
    ("page", "integer"),
    ("limit", "integer"),
    ("node", "string"),
    ("clientid", "string"),
    ("username", "string"),
    ("ip_address", "string"),
    ("conn_state", "string"),
    ("proto_ver", "string"),
    ("clean_start", "boolean"),
    ("like_clientid", "string"),
    ("like_username", "string"),
    ("gte_connected_at", "string"),
    ("lte_connected_at", "string"),
    ("gte_created_at", "string"),
    ("lte_created_at", "string"),
    ("endpoint_name", "string"),
    ("like_endpoint_name", "string"),
    ("gte_lifetime", "integer"),
    ("lte_lifetime", "integer"),
];
const SUB_QUERY: &[Param] = &[
    ("page", "integer"),
    ("limit", "integer"),
    ("node", "string"),
    ("clientid", "string"),
    ("qos", "integer"),
    ("share_group", "string"),
    ("topic", "string"),
    ("match_topic", "string"),
];
const TOPIC_QUERY: &[Param] = &[
    ("page", "integer"),
    ("limit", "integer"),
    ("topic", "string"),
    ("node", "string"),
];
const RETAINED_QUERY: &[Param] = &[
    ("page", "integer"),
    ("limit", "integer"),
    ("topic", "string"),
];
const USER_QUERY: &[Param] = &[
    ("page", "integer"),
    ("limit", "integer"),
    ("like_user_id", "string"),
    ("is_superuser", "boolean"),
];
const AGGREGATE: &[Param] = &[("aggregate", "boolean")];
const STATUS_QUERY: &[Param] = &[("status", "string")];
const IMPORT_QUERY: &[Param] = &[("type", "string")];

#[allow(clippy::too_many_arguments)]
fn op(
    method: &'static str,
    path: impl Into<String>,
    tag: &'static str,
    summary: &'static str,
    query: &'static [Param],
    body: Option<&'static str>,
    codes: &'static [u16],
    handler: MethodRouter<Arc<ApiState>>,
) -> Op {
    Op {
        method,
        path: path.into(),
        tag,
        summary,
        access: Access::Key,
        query,
        body,
        codes,
        handler,
    }
}

const J: Option<&str> = Some("json");
const M: Option<&str> = Some("multipart");

/// Every operation.
pub(crate) fn table() -> Vec<Op> {
    let mut ops = vec![
        Op {
            access: Access::Open,
            ..op(
                "POST",
                "/login",
                "dashboard",
                "Log in: a bearer token for a dashboard user",
                &[],
                J,
                &[200, 400, 401],
                post(users::login),
            )
        },
        Op {
            access: Access::Open,
            ..op(
                "GET",
                "/status",
                "node",
                "Is the node running (text)",
                &[],
                None,
                &[200],
                get(mqtt::status),
            )
        },
        Op {
            access: Access::Metrics,
            ..op(
                "GET",
                "/prometheus/stats",
                "metrics",
                "Every protocol's counters, Prometheus text format",
                &[],
                None,
                &[200, 401],
                get(prometheus::stats),
            )
        },
        op(
            "POST",
            "/logout",
            "dashboard",
            "End the request's token",
            &[],
            None,
            &[204, 400, 401],
            post(users::logout),
        ),
        op(
            "GET",
            "/users",
            "dashboard",
            "Dashboard users",
            &[],
            None,
            &[200, 401],
            get(users::list),
        ),
        op(
            "POST",
            "/users/{username}/change_pwd",
            "dashboard",
            "Change a dashboard user's password",
            &[],
            J,
            &[204, 400, 401, 403, 404],
            post(users::change_pwd),
        ),
        op(
            "GET",
            "/api_key",
            "api_key",
            "API keys",
            &[],
            None,
            &[200, 401],
            get(keys::list),
        ),
        op(
            "POST",
            "/api_key",
            "api_key",
            "Create an API key (its secret is shown once)",
            &[],
            J,
            &[200, 400, 401, 403],
            post(keys::create),
        ),
        op(
            "GET",
            "/api_key/{name}",
            "api_key",
            "One API key",
            &[],
            None,
            &[200, 401, 404],
            get(keys::get),
        ),
        op(
            "PUT",
            "/api_key/{name}",
            "api_key",
            "Change an API key",
            &[],
            J,
            &[200, 400, 401, 403, 404],
            put(keys::update),
        ),
        op(
            "DELETE",
            "/api_key/{name}",
            "api_key",
            "Delete an API key",
            &[],
            None,
            &[204, 400, 401, 403, 404],
            delete(keys::delete),
        ),
        op(
            "GET",
            "/clients",
            "clients",
            "MQTT clients",
            CLIENT_QUERY,
            None,
            &[200, 400, 401],
            get(clients::list_mqtt),
        ),
        op(
            "GET",
            "/clients/{clientid}",
            "clients",
            "One MQTT client",
            &[],
            None,
            &[200, 401, 404],
            get(clients::get_mqtt),
        ),
        op(
            "DELETE",
            "/clients/{clientid}",
            "clients",
            "Kick an MQTT client",
            &[],
            None,
            &[204, 401, 403, 404],
            delete(clients::kick_mqtt),
        ),
        op(
            "GET",
            "/clients/{clientid}/subscriptions",
            "clients",
            "An MQTT client's subscriptions",
            &[],
            None,
            &[200, 400, 401, 404, 504],
            get(clients::subscriptions_mqtt),
        ),
        op(
            "POST",
            "/clients/{clientid}/subscribe",
            "clients",
            "Subscribe an MQTT client",
            &[],
            J,
            &[201, 400, 401, 403, 404, 504],
            post(clients::subscribe_mqtt),
        ),
        op(
            "POST",
            "/clients/{clientid}/unsubscribe",
            "clients",
            "Unsubscribe an MQTT client",
            &[],
            J,
            &[204, 400, 401, 403, 404, 504],
            post(clients::unsubscribe_mqtt),
        ),
        op(
            "GET",
            "/stats",
            "node",
            "Table sizes",
            AGGREGATE,
            None,
            &[200, 400, 401],
            get(mqtt::stats),
        ),
        op(
            "GET",
            "/metrics",
            "node",
            "The broker's counters",
            AGGREGATE,
            None,
            &[200, 400, 401],
            get(mqtt::metrics),
        ),
        op(
            "GET",
            "/nodes",
            "node",
            "Nodes",
            &[],
            None,
            &[200, 401],
            get(mqtt::nodes),
        ),
        op(
            "GET",
            "/nodes/{node}",
            "node",
            "One node",
            &[],
            None,
            &[200, 401, 404],
            get(mqtt::node),
        ),
        op(
            "GET",
            "/listeners",
            "mqtt",
            "MQTT listeners",
            &[],
            None,
            &[200, 401],
            get(mqtt::listeners),
        ),
        op(
            "GET",
            "/subscriptions",
            "mqtt",
            "Every subscription",
            SUB_QUERY,
            None,
            &[200, 400, 401],
            get(mqtt::subscriptions),
        ),
        op(
            "GET",
            "/topics",
            "mqtt",
            "Subscribed filters",
            TOPIC_QUERY,
            None,
            &[200, 400, 401],
            get(mqtt::topics),
        ),
        op(
            "POST",
            "/publish",
            "mqtt",
            "Publish a message",
            &[],
            J,
            &[200, 202, 400, 401, 403],
            post(mqtt::publish),
        ),
        op(
            "POST",
            "/publish/bulk",
            "mqtt",
            "Publish messages",
            &[],
            J,
            &[200, 202, 400, 401, 403],
            post(mqtt::publish_bulk),
        ),
        op(
            "GET",
            "/mqtt/retainer/messages",
            "retainer",
            "Retained messages",
            RETAINED_QUERY,
            None,
            &[200, 400, 401],
            get(mqtt::retained_list),
        ),
        op(
            "GET",
            "/mqtt/retainer/message/{topic}",
            "retainer",
            "One retained message",
            &[],
            None,
            &[200, 401, 404],
            get(mqtt::retained_get),
        ),
        op(
            "DELETE",
            "/mqtt/retainer/message/{topic}",
            "retainer",
            "Delete a retained message",
            &[],
            None,
            &[204, 401, 403, 404],
            delete(mqtt::retained_delete),
        ),
        op(
            "POST",
            "/configs/reload",
            "node",
            "Read the config file again",
            &[],
            None,
            &[200, 400, 401, 403],
            post(crate::reload),
        ),
        op(
            "GET",
            "/authentication",
            "authentication",
            "MQTT's authenticators",
            &[],
            None,
            &[200, 401],
            get(mqtt_authn::list),
        ),
        op(
            "POST",
            "/authentication",
            "authentication",
            "Add an MQTT authenticator",
            &[],
            J,
            &[200, 400, 401, 403, 409],
            post(mqtt_authn::create),
        ),
        op(
            "GET",
            "/authentication/{id}",
            "authentication",
            "One MQTT authenticator",
            &[],
            None,
            &[200, 401, 404],
            get(mqtt_authn::get),
        ),
        op(
            "PUT",
            "/authentication/{id}",
            "authentication",
            "Replace an MQTT authenticator",
            &[],
            J,
            &[200, 400, 401, 403, 404],
            put(mqtt_authn::update),
        ),
        op(
            "DELETE",
            "/authentication/{id}",
            "authentication",
            "Remove an MQTT authenticator",
            &[],
            None,
            &[204, 401, 403, 404],
            delete(mqtt_authn::delete),
        ),
        op(
            "GET",
            "/authentication/{id}/users",
            "authentication",
            "MQTT's built-in users",
            USER_QUERY,
            None,
            &[200, 400, 401, 404],
            get(authn::mqtt_users),
        ),
        op(
            "POST",
            "/authentication/{id}/users",
            "authentication",
            "Add an MQTT user",
            &[],
            J,
            &[201, 400, 401, 403, 404, 409],
            post(authn::mqtt_add_user),
        ),
        op(
            "GET",
            "/authentication/{id}/users/{uid}",
            "authentication",
            "One MQTT user",
            &[],
            None,
            &[200, 401, 404],
            get(authn::mqtt_user),
        ),
        op(
            "PUT",
            "/authentication/{id}/users/{uid}",
            "authentication",
            "Change an MQTT user",
            &[],
            J,
            &[200, 400, 401, 403, 404],
            put(authn::mqtt_update_user),
        ),
        op(
            "DELETE",
            "/authentication/{id}/users/{uid}",
            "authentication",
            "Delete an MQTT user",
            &[],
            None,
            &[204, 401, 403, 404],
            delete(authn::mqtt_delete_user),
        ),
        op(
            "POST",
            "/authentication/{id}/import_users",
            "authentication",
            "Import MQTT users (CSV or JSON file)",
            IMPORT_QUERY,
            M,
            &[200, 400, 401, 403, 404],
            post(authn::mqtt_import_users),
        ),
        op(
            "GET",
            "/gateway_registry",
            "gateways",
            "Registered gateways",
            &[],
            None,
            &[200, 401],
            get(gateways::registry),
        ),
        op(
            "GET",
            "/gateways",
            "gateways",
            "Gateways",
            STATUS_QUERY,
            None,
            &[200, 400, 401],
            get(gateways::list),
        ),
        op(
            "POST",
            "/gateways",
            "gateways",
            "Load a gateway with this whole configuration",
            &[],
            J,
            &[201, 400, 401, 403, 404],
            post(gateways::post),
        ),
        op(
            "GET",
            "/gateways/{name}",
            "gateways",
            "One gateway with its defaults",
            &[],
            None,
            &[200, 400, 401],
            get(gateways::get),
        ),
        op(
            "PUT",
            "/gateways/{name}",
            "gateways",
            "Load or update a gateway",
            &[],
            J,
            &[204, 400, 401, 403],
            put(gateways::put),
        ),
        op(
            "DELETE",
            "/gateways/{name}",
            "gateways",
            "Unload a gateway",
            &[],
            None,
            &[204, 400, 401, 403, 404],
            delete(gateways::unload),
        ),
        op(
            "PUT",
            "/gateways/{name}/enable/{enable}",
            "gateways",
            "Start or stop a gateway",
            &[],
            None,
            &[204, 400, 401, 403, 404],
            put(gateways::enable),
        ),
        op(
            "GET",
            "/gateways/{name}/metrics",
            "gateways",
            "A gateway's counters",
            &[],
            None,
            &[200, 400, 401, 404],
            get(gateways::metrics),
        ),
        op(
            "GET",
            "/gateways/{name}/listeners",
            "listeners",
            "A gateway's listeners",
            &[],
            None,
            &[200, 400, 401, 404],
            get(gateways::listeners),
        ),
        op(
            "POST",
            "/gateways/{name}/listeners",
            "listeners",
            "Add a listener",
            &[],
            J,
            &[201, 400, 401, 403, 404],
            post(gateways::add_listener),
        ),
        op(
            "GET",
            "/gateways/{name}/listeners/{id}",
            "listeners",
            "One listener",
            &[],
            None,
            &[200, 400, 401, 404],
            get(gateways::get_listener),
        ),
        op(
            "PUT",
            "/gateways/{name}/listeners/{id}",
            "listeners",
            "Replace a listener's settings",
            &[],
            J,
            &[200, 400, 401, 403, 404],
            put(gateways::update_listener),
        ),
        op(
            "DELETE",
            "/gateways/{name}/listeners/{id}",
            "listeners",
            "Remove a listener",
            &[],
            None,
            &[204, 400, 401, 403, 404],
            delete(gateways::delete_listener),
        ),
        op(
            "GET",
            "/gateways/{name}/clients",
            "gateway clients",
            "A gateway's clients",
            CLIENT_QUERY,
            None,
            &[200, 400, 401, 404],
            get(clients::list),
        ),
        op(
            "GET",
            "/gateways/{name}/clients/{clientid}",
            "gateway clients",
            "One client of a gateway",
            &[],
            None,
            &[200, 400, 401, 404],
            get(clients::get),
        ),
        op(
            "DELETE",
            "/gateways/{name}/clients/{clientid}",
            "gateway clients",
            "Kick a client of a gateway",
            &[],
            None,
            &[204, 400, 401, 403, 404],
            delete(clients::kick),
        ),
        op(
            "GET",
            "/gateways/{name}/clients/{clientid}/subscriptions",
            "gateway clients",
            "A gateway client's subscriptions",
            &[],
            None,
            &[200, 400, 401, 404, 504],
            get(clients::subscriptions),
        ),
        op(
            "POST",
            "/gateways/{name}/clients/{clientid}/subscriptions",
            "gateway clients",
            "Subscribe a gateway client",
            &[],
            J,
            &[201, 400, 401, 403, 404, 504],
            post(clients::add_subscription),
        ),
        op(
            "POST",
            "/gateways/{name}/clients/{clientid}/request",
            "gateway clients",
            "Send a request to a device (CoAP) and answer with its response",
            &[],
            J,
            &[200, 400, 401, 403, 404, 504],
            post(clients::request),
        ),
        op(
            "GET",
            "/gateways/{name}/clients/{clientid}/lookup",
            "gateway clients",
            "An LwM2M command's latest result",
            &[("path", "string"), ("action", "string")],
            None,
            &[200, 400, 401, 404, 504],
            get(lwm2m::lookup),
        ),
        op(
            "POST",
            "/gateways/{name}/clients/{clientid}/read",
            "gateway clients",
            "Send an LwM2M read to a device",
            &[("path", "string")],
            None,
            &[204, 400, 401, 403, 404, 504],
            post(lwm2m::read),
        ),
        op(
            "POST",
            "/gateways/{name}/clients/{clientid}/write",
            "gateway clients",
            "Send an LwM2M write to a device",
            &[("path", "string"), ("type", "string"), ("value", "string")],
            None,
            &[204, 400, 401, 403, 404, 504],
            post(lwm2m::write),
        ),
        op(
            "POST",
            "/gateways/{name}/clients/{clientid}/observe",
            "gateway clients",
            "Start or stop an LwM2M observation",
            &[("path", "string"), ("enable", "boolean")],
            None,
            &[204, 400, 401, 403, 404, 504],
            post(lwm2m::observe),
        ),
        op(
            "GET",
            "/gateways/{name}/objects",
            "gateways",
            "The LwM2M object definitions",
            &[],
            None,
            &[200, 400, 401, 404],
            get(lwm2m::list_objects),
        ),
        op(
            "POST",
            "/gateways/{name}/objects",
            "gateways",
            "Add or replace LwM2M object definitions (OMA XML or JSON)",
            &[],
            J,
            &[201, 400, 401, 403, 404],
            post(lwm2m::put_objects),
        ),
        op(
            "GET",
            "/gateways/{name}/objects/{id}",
            "gateways",
            "One LwM2M object definition",
            &[],
            None,
            &[200, 400, 401, 404],
            get(lwm2m::get_object),
        ),
        op(
            "DELETE",
            "/gateways/{name}/objects/{id}",
            "gateways",
            "Remove an LwM2M object definition",
            &[],
            None,
            &[204, 400, 401, 403, 404],
            delete(lwm2m::delete_object),
        ),
        op(
            "DELETE",
            "/gateways/{name}/clients/{clientid}/subscriptions/{topic}",
            "gateway clients",
            "Unsubscribe a gateway client",
            &[],
            None,
            &[204, 400, 401, 403, 404, 504],
            delete(clients::delete_subscription),
        ),
    ];
    // The authenticator of a gateway and of one of its listeners, with their users.
    for (prefix, tag) in [
        ("/gateways/{name}", "gateway authentication"),
        ("/gateways/{name}/listeners/{id}", "listener authentication"),
    ] {
        let listener = prefix.ends_with("{id}");
        let p = |rest: &str| format!("{prefix}{rest}");
        let pick = |g: MethodRouter<Arc<ApiState>>, l: MethodRouter<Arc<ApiState>>| {
            if listener {
                l
            } else {
                g
            }
        };
        ops.extend([
            op(
                "GET",
                p("/authentication"),
                tag,
                "The authenticator (204: none)",
                &[],
                None,
                &[200, 204, 400, 401, 404],
                pick(get(authn::get), get(authn::listener_get)),
            ),
            op(
                "POST",
                p("/authentication"),
                tag,
                "Add the authenticator",
                &[],
                J,
                &[201, 400, 401, 403, 404],
                pick(post(authn::create), post(authn::listener_create)),
            ),
            op(
                "PUT",
                p("/authentication"),
                tag,
                "Replace the authenticator",
                &[],
                J,
                &[200, 400, 401, 403, 404],
                pick(put(authn::update), put(authn::listener_update)),
            ),
            op(
                "DELETE",
                p("/authentication"),
                tag,
                "Remove the authenticator",
                &[],
                None,
                &[204, 400, 401, 403, 404],
                pick(delete(authn::delete), delete(authn::listener_delete)),
            ),
            op(
                "GET",
                p("/authentication/users"),
                tag,
                "Built-in users",
                USER_QUERY,
                None,
                &[200, 400, 401, 404],
                pick(get(authn::users), get(authn::listener_users)),
            ),
            op(
                "POST",
                p("/authentication/users"),
                tag,
                "Add a user",
                &[],
                J,
                &[201, 400, 401, 403, 404, 409],
                pick(post(authn::add_user), post(authn::listener_add_user)),
            ),
            op(
                "GET",
                p("/authentication/users/{uid}"),
                tag,
                "One user",
                &[],
                None,
                &[200, 400, 401, 404],
                pick(get(authn::user), get(authn::listener_user)),
            ),
            op(
                "PUT",
                p("/authentication/users/{uid}"),
                tag,
                "Change a user",
                &[],
                J,
                &[200, 400, 401, 403, 404],
                pick(put(authn::update_user), put(authn::listener_update_user)),
            ),
            op(
                "DELETE",
                p("/authentication/users/{uid}"),
                tag,
                "Delete a user",
                &[],
                None,
                &[204, 400, 401, 403, 404],
                pick(
                    delete(authn::delete_user),
                    delete(authn::listener_delete_user),
                ),
            ),
            op(
                "POST",
                p("/authentication/import_users"),
                tag,
                "Import users (CSV or JSON file)",
                IMPORT_QUERY,
                M,
                &[200, 400, 401, 403, 404],
                pick(
                    post(authn::import_users),
                    post(authn::listener_import_users),
                ),
            ),
        ]);
    }
    ops
}

/// The routes of `ops` with access `access`, merged by path.
pub(crate) fn routes(ops: &mut [Op], access: Access) -> axum::Router<Arc<ApiState>> {
    let mut by_path: BTreeMap<String, MethodRouter<Arc<ApiState>>> = BTreeMap::new();
    for op in ops.iter_mut().filter(|o| o.access == access) {
        let handler = std::mem::take(&mut op.handler);
        let merged = match by_path.remove(&op.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(op.path.clone(), merged);
    }
    by_path
        .into_iter()
        .fold(axum::Router::new(), |r, (path, m)| r.route(&path, m))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: no subscriber matched",
        204 => "No content",
        400 => "Bad request (the offending field in `message`)",
        401 => "No valid API key or token",
        403 => "The role may not do this",
        404 => "Not found",
        409 => "Already exists",
        504 => "The client's connection did not answer",
        _ => "Answer",
    }
}

/// The OpenAPI 3.0 document of `ops` (`metrics_need_a_key`: `prometheus.enable_basic_auth`).
pub(crate) fn openapi(ops: &[Op], metrics_need_a_key: bool) -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in ops {
        let mut params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true,
                       "schema": {"type": "string", "minLength": 1}})
            })
            .collect();
        params.extend(op.query.iter().map(|(name, kind)| {
            let schema = match (*name, *kind) {
                ("page", _) => json!({"type": "integer", "minimum": 1}),
                ("limit", _) => json!({"type": "integer", "minimum": 1, "maximum": 10000}),
                (_, kind) => json!({"type": kind}),
            };
            json!({"name": name, "in": "query", "required": false, "schema": schema})
        }));
        let mut responses = Map::new();
        for code in op.codes {
            let mut r = json!({"description": reason(*code)});
            if *code >= 400 {
                r["content"] =
                    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
            } else if *code != 204 {
                let media = match op.path.as_str() {
                    "/status" | "/prometheus/stats" => "text/plain",
                    _ => "application/json",
                };
                r["content"] = json!({ media: {"schema": {}} });
            }
            responses.insert(code.to_string(), r);
        }
        let mut operation = json!({
            "tags": [op.tag],
            "summary": op.summary,
            "operationId": format!("{} {}", op.method, op.path),
            "parameters": params,
            "responses": responses,
        });
        if op.access == Access::Open || (op.access == Access::Metrics && !metrics_need_a_key) {
            operation["security"] = json!([]);
        }
        match op.body {
            Some("json") => {
                operation["requestBody"] = json!({"required": true,
                    "content": {"application/json": {"schema": {}}}});
            }
            Some(_) => {
                operation["requestBody"] = json!({"required": true,
                    "content": {"multipart/form-data": {"schema": {"type": "object",
                        "properties": {"filename": {"type": "string", "format": "binary"}},
                        "required": ["filename"]}}}});
            }
            None => {}
        }
        paths
            .entry(op.path.as_str())
            .or_default()
            .insert(op.method.to_ascii_lowercase(), operation);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Junction management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "EMQX's /api/v5 paths, JSON and error codes.",
        },
        "servers": [{"url": "/api/v5"}],
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_routed_and_documented_once() {
        let mut ops = table();
        let doc = openapi(&ops, false);
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, ops.len(), "an operation is listed twice");
        // Building the routes takes every handler (a path routed twice would panic).
        for access in [Access::Open, Access::Metrics, Access::Key] {
            let _ = routes(&mut ops, access);
        }
        assert_eq!(doc["paths"]["/status"]["get"]["security"], json!([]));
        assert!(doc["paths"]["/clients"]["get"].get("security").is_none());
    }
}
