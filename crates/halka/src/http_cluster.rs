//! `/v1/cluster/...`: the layout and its changes over HTTP, JSON in and out (the same
//! actions as `halka cluster`, see `cluster_admin`).

use crate::cluster_admin::{self as admin, AdminError, Failure};
use crate::state::NodeState;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The routes under `/v1/cluster/`.
pub fn routes() -> Router<Arc<NodeState>> {
    Router::new()
        .route("/v1/cluster/status", get(status))
        .route("/v1/cluster/plan", get(plan))
        .route("/v1/cluster/join", post(join))
        .route("/v1/cluster/leave", post(leave))
        .route("/v1/cluster/replace", post(replace))
        .route("/v1/cluster/commit", post(commit))
        .route("/v1/cluster/staged", delete(clear))
}

fn failed(e: AdminError) -> Response {
    let status = match e.0 {
        Failure::Invalid => StatusCode::BAD_REQUEST,
        Failure::Conflict => StatusCode::CONFLICT,
        Failure::Unreachable => StatusCode::BAD_GATEWAY,
        Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, axum::Json(json!({ "error": e.1 }))).into_response()
}

fn answer<T: serde::Serialize>(result: Result<T, AdminError>) -> Response {
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => failed(e),
    }
}

/// A body that is not the JSON asked for, said plainly.
fn bad_body(e: &JsonRejection, expected: &str) -> Response {
    let message = format!("{}; expected a JSON body like {expected}", e.body_text());
    failed(AdminError(Failure::Invalid, message))
}

async fn status(State(state): State<Arc<NodeState>>) -> Response {
    axum::Json(admin::status(&state).await).into_response()
}

async fn plan(State(state): State<Arc<NodeState>>) -> Response {
    answer(admin::plan(&state))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Join {
    /// A peer address, or (as `node`) the id a node announced by gossip.
    #[serde(alias = "node")]
    peer_addr: String,
    zone: Option<String>,
    weight: Option<u32>,
}

async fn join(
    State(state): State<Arc<NodeState>>,
    body: Result<axum::Json<Join>, JsonRejection>,
) -> Response {
    match body {
        Ok(axum::Json(j)) => answer(admin::join(&state, &j.peer_addr, j.zone, j.weight).await),
        Err(e) => bad_body(
            &e,
            r#"{"peer_addr": "10.0.0.4:7380" or "node": "node-4", "zone": "b", "weight": 1}"#,
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Leave {
    node: String,
}

async fn leave(
    State(state): State<Arc<NodeState>>,
    body: Result<axum::Json<Leave>, JsonRejection>,
) -> Response {
    match body {
        Ok(axum::Json(l)) => answer(admin::leave(&state, &l.node)),
        Err(e) => bad_body(&e, r#"{"node": "node-2"}"#),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replace {
    old: String,
    /// A peer address, or (as `node`) the id a node announced by gossip.
    #[serde(alias = "node")]
    peer_addr: String,
}

async fn replace(
    State(state): State<Arc<NodeState>>,
    body: Result<axum::Json<Replace>, JsonRejection>,
) -> Response {
    match body {
        Ok(axum::Json(r)) => answer(admin::replace(&state, &r.old, &r.peer_addr).await),
        Err(e) => bad_body(&e, r#"{"old": "node-2", "peer_addr": "10.0.0.5:7380"}"#),
    }
}

async fn commit(State(state): State<Arc<NodeState>>) -> Response {
    answer(admin::commit(&state).await)
}

async fn clear(State(state): State<Arc<NodeState>>) -> Response {
    admin::clear(&state);
    axum::Json(json!({ "staged": [] })).into_response()
}
