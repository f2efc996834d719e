//! The HTTP/JSON front end: key operations with per-request quorums, siblings and causal
//! context, cluster status, Prometheus metrics and a health check.
//!
//! Values travel as JSON strings when they are UTF-8 and as base64 otherwise (`encoding`
//! says which); request bodies are the raw value. The causal context is an opaque
//! URL-safe token: pass the one a GET returned in `X-Halka-Context` (or `?context=`) to
//! make a PUT replace exactly the siblings that GET saw. A raw GET (`?raw=true`, or
//! `Accept: application/octet-stream`) answers with the value's bytes and the
//! `Content-Type` they were stored with, or `300 Multiple Choices` over siblings.

use crate::state::NodeState;
use crate::telemetry::metrics_handle;
use axum::Router;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use halka_cluster::{ClusterError, GetResult, WriteRequest};
use halka_store::{Change, Condition, Expiry, LimitError, Record, Version, VersionVector};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves HTTP until `shutdown` is cancelled, finishing requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: Arc<NodeState>,
    shutdown: CancellationToken,
) -> TcpListener {
    let http = &state.config.http;
    let limits = crate::http_listener::HttpLimits {
        max_connections: http.max_connections,
        max_connections_per_source: http.max_connections_per_source,
        header_timeout: std::time::Duration::from_millis(http.header_timeout_ms),
        request_timeout: std::time::Duration::from_millis(http.request_timeout_ms),
    };
    let tls = state.tls.clone().filter(|_| state.config.tls.http);
    crate::http_listener::serve(listener, router(state), limits, shutdown, tls).await
}

/// The routes, for `serve` and for tests.
pub fn router(state: Arc<NodeState>) -> Router {
    // The body limit is the value limit plus one byte, so an oversized value is seen (and
    // rejected with a clear message) rather than cut off.
    let body_limit = state.config.limits.max_value_bytes + 1;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/cluster", get(cluster))
        .route("/v1/kv", get(list_keys))
        .route("/v1/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .merge(crate::http_cluster::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::http_auth::authorize,
        ))
        .with_state(state)
}

#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        let status = match &e {
            ClusterError::Quorum(q) if q.for_lack_of_space() => StatusCode::INSUFFICIENT_STORAGE,
            ClusterError::Quorum(_)
            | ClusterError::NotInCluster
            | ClusterError::Replaced { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ClusterError::Limit(
                LimitError::ValueTooLarge { .. } | LimitError::RecordTooLarge { .. },
            ) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {}; the API serves /v1/kv/{{key}}, /v1/cluster, \
             /v1/cluster/{{status,plan,join,leave,replace,commit,staged}}, /metrics and /health",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}; the Allow header lists what is", uri.path()),
    )
}

// Query-string and path extraction failures become JSON errors, like every other error.
fn query(params: Result<Query<KvParams>, QueryRejection>) -> Result<KvParams, ApiError> {
    params.map(|Query(p)| p).map_err(|e| ApiError(e.status(), e.body_text()))
}

fn path(key: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    key.map(|Path(k)| k).map_err(|e| ApiError(e.status(), e.body_text()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KvParams {
    r: Option<usize>,
    w: Option<usize>,
    /// Acknowledgements that must come from owners, not stand-ins.
    pw: Option<usize>,
    /// Answers that must come from owners. Reads are only ever answered by owners in
    /// halka, so any `pr` up to `r` holds; it is checked for clients that set it.
    pr: Option<usize>,
    context: Option<String>,
    /// GET: the value's bytes as the body, with the type it was stored with (as does
    /// `Accept: application/octet-stream`), instead of JSON.
    raw: Option<bool>,
    /// PUT: the value expires this many milliseconds from now.
    ttl_ms: Option<u64>,
}

/// The receipt of a write: who acknowledged it, who of them stood in for whom, and
/// who of them had fsynced it (sync policy `always`).
fn receipt(put: &halka_cluster::PutResult) -> Value {
    let names = |nodes: &[halka_store::NodeId]| -> Vec<String> {
        nodes.iter().map(ToString::to_string).collect()
    };
    let stand_ins: serde_json::Map<String, Value> = put
        .stand_ins
        .iter()
        .map(|(by, owner)| (by.to_string(), json!(owner.to_string())))
        .collect();
    json!({ "acked": names(&put.acked), "stand_ins": stand_ins, "synced": names(&put.synced) })
}

fn write_quorum(state: &NodeState, params: &KvParams) -> halka_cluster::WriteQuorum {
    halka_cluster::WriteQuorum { w: params.w.unwrap_or(state.config.w), pw: params.pw.unwrap_or(0) }
}

fn observe(op: &'static str, started: Instant) {
    metrics::counter!("halka_requests_total", "protocol" => "http", "op" => op).increment(1);
    metrics::histogram!("halka_request_duration_seconds", "protocol" => "http", "op" => op)
        .record(started.elapsed().as_secs_f64());
}

fn key_bytes(state: &NodeState, key: &str) -> Result<Bytes, ApiError> {
    let key = Bytes::copy_from_slice(key.as_bytes());
    state
        .config
        .limits
        .check_key(&key)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(key)
}

#[derive(Serialize)]
struct JsonVersion {
    value: Option<String>,
    encoding: &'static str,
    deleted: bool,
    timestamp_us: u64,
    /// When the version's value expires (it then reads as deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_us: Option<u64>,
    /// Whether the version holds a counter (`INCR`): its value is then the sum of every
    /// node's increments, which `value` at the top level reports.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    counter: bool,
    /// The media type the value was stored with (the PUT's `Content-Type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    node: String,
}

fn json_value(v: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(v) {
        Ok(s) => (s.to_string(), "utf8"),
        Err(_) => (STANDARD.encode(v), "base64"),
    }
}

fn json_version(v: &Version) -> JsonVersion {
    let (value, encoding) = v.value.as_deref().map_or((None, "utf8"), |b| {
        let (s, e) = json_value(b);
        (Some(s), e)
    });
    JsonVersion {
        value,
        encoding,
        deleted: v.value.is_none(),
        timestamp_us: v.timestamp_us,
        expires_at_us: v.expires_at_us,
        counter: v.counter.is_some(),
        content_type: v.content_type.as_deref().map(str::to_string),
        node: v.dot.node.to_string(),
    }
}

/// A PUT's precondition, checked at the key's first owner: `If-None-Match: *` stores only
/// over nothing; `If-Match: <context token>` only if nothing was written to the key since
/// that context was read (compare-and-set; the token is a GET's `context`).
fn write_condition(
    state: &NodeState,
    key: &[u8],
    headers: &HeaderMap,
) -> Result<Condition, ApiError> {
    let none_match = headers.get("if-none-match").map(HeaderValue::as_bytes);
    let if_match = headers.get("if-match").map(HeaderValue::to_str);
    match (none_match, if_match) {
        (None, None) => Ok(Condition::Always),
        (Some(b"*"), None) => Ok(Condition::Absent),
        (Some(_), None) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "If-None-Match supports only \"*\" (store only if absent)".into(),
        )),
        (None, Some(Ok(token))) => {
            let token = token.trim_matches('"');
            let seen = state.tokens.decode(key, token).map_err(|e| {
                ApiError(StatusCode::BAD_REQUEST, format!("invalid If-Match context: {e}"))
            })?;
            Ok(Condition::Unchanged(seen))
        }
        (None, Some(Err(_))) => {
            Err(ApiError(StatusCode::BAD_REQUEST, "If-Match must be ASCII".into()))
        }
        (Some(_), Some(_)) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "give If-Match or If-None-Match, not both".into(),
        )),
    }
}

/// The causal context a write names: `X-Halka-Context`, else `?context=`.
fn request_context(
    state: &NodeState,
    key: &[u8],
    headers: &HeaderMap,
    query: Option<String>,
) -> Result<Option<VersionVector>, ApiError> {
    let token = headers
        .get("x-halka-context")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, "X-Halka-Context must be ASCII".into()))?
        .or(query);
    token
        .map(|t| {
            state.tokens.decode(key, &t).map_err(|e| {
                // The token is not echoed: an error page or a log must not carry it.
                ApiError(StatusCode::BAD_REQUEST, format!("invalid causal context: {e}"))
            })
        })
        .transpose()
}

fn record_json(state: &NodeState, key: &str, result: &GetResult) -> Value {
    let winner = result.value().map(|v| json_value(&v));
    let siblings: Vec<JsonVersion> = result.record.versions().iter().map(json_version).collect();
    let replicas: Vec<Value> = result
        .replies
        .iter()
        .map(|(node, rec)| {
            let versions: Vec<JsonVersion> = rec
                .as_deref()
                .map(Record::versions)
                .unwrap_or_default()
                .iter()
                .map(json_version)
                .collect();
            json!({ "node": node.to_string(), "found": rec.is_some(), "versions": versions })
        })
        .collect();
    json!({
        "key": key,
        "value": winner.as_ref().map(|w| &w.0),
        "encoding": winner.as_ref().map_or("utf8", |w| w.1),
        "siblings": siblings,
        "context": state.tokens.encode(key.as_bytes(), result.context()),
        "replicas": replicas,
    })
}

/// A collection as JSON: its type and its members (a hash's fields with their values; a
/// set's members as a list; a sorted set's as a list of members with scores, in order), each as UTF-8 or, when it is not, base64 (as values are).
async fn collection_json(
    state: &NodeState,
    key: &str,
    k: &Bytes,
    r: usize,
    head: &halka_store::Head,
) -> Result<Value, ApiError> {
    let budget = state.config.limits.max_reply_bytes;
    let quorum = halka_cluster::WriteQuorum { w: 1, pw: 0 };
    let collection =
        halka_cluster::collection::Collection::new(&state.coordinator, k.clone(), r, quorum);
    let live = collection.members(head, budget).await?;
    // One encoding for every member, so a reader knows how to read each.
    let utf8 = |b: &[u8]| std::str::from_utf8(b).is_ok();
    let base64 = !live.iter().all(|(m, v)| utf8(m) && utf8(v));
    let text =
        |b: &[u8]| if base64 { STANDARD.encode(b) } else { String::from_utf8_lossy(b).into() };
    let members = match head.kind {
        halka_store::Kind::Hash => {
            let map: serde_json::Map<String, Value> =
                live.iter().map(|(m, v)| (text(m), json!(text(v)))).collect();
            Value::Object(map)
        }
        halka_store::Kind::Set => Value::Array(live.iter().map(|(m, _)| json!(text(m))).collect()),
        // In the set's order. JSON has no infinity: those two scores are strings.
        halka_store::Kind::SortedSet => {
            let ranked = halka_store::score::ranked(live);
            let score = |s: halka_store::Score| {
                if s.0.is_finite() { json!(s.0) } else { json!(s.to_string()) }
            };
            Value::Array(
                ranked
                    .into_iter()
                    .map(|(m, s)| json!({"member": text(&m), "score": score(s)}))
                    .collect(),
            )
        }
    };
    Ok(json!({
        "key": key,
        "type": head.kind.name(),
        "members": members,
        "encoding": if base64 { "base64" } else { "utf8" },
    }))
}

async fn get_key(
    State(state): State<Arc<NodeState>>,
    key: Result<Path<String>, PathRejection>,
    params: Result<Query<KvParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (key, params) = (path(key)?, query(params)?);
    let k = key_bytes(&state, &key)?;
    let r = params.r.unwrap_or(state.config.r);
    if let Some(pr) = params.pr
        && pr > r
    {
        let message = format!(
            "pr={pr} exceeds r={r}: owners' answers are among the r; allowed range is 0..={r}"
        );
        return Err(ApiError(StatusCode::BAD_REQUEST, message));
    }
    let result = state.coordinator.get(k.clone(), r).await?;
    if let Some(head) = result.head() {
        let body = collection_json(&state, &key, &k, r, &head).await?;
        observe("get", started);
        return Ok((StatusCode::OK, axum::Json(body)).into_response());
    }
    observe("get", started);
    let raw = params.raw.unwrap_or(false)
        || headers.get(axum::http::header::ACCEPT).is_some_and(|a| a == OCTET_STREAM);
    if raw {
        return Ok(raw_response(&state, &key, &result));
    }
    let found = result.values().next().is_some();
    let status = if found { StatusCode::OK } else { StatusCode::NOT_FOUND };
    let mut body = record_json(&state, &key, &result);
    if !found {
        body["error"] = json!(format!("key {key:?} not found"));
    }
    // The context token doubles as an entity tag: `If-Match` with it makes a PUT a
    // compare-and-set.
    let etag = format!("\"{}\"", body["context"].as_str().unwrap_or_default());
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(axum::http::header::ETAG, value);
    }
    Ok(response)
}

const OCTET_STREAM: &str = "application/octet-stream";

/// A raw GET's answer, as Riak's: the value's bytes with the type it was stored with; `300
/// Multiple Choices` listing the siblings (as JSON) when concurrent writes left several;
/// 404 when there is none. The causal context is in `X-Halka-Context` and, quoted, in
/// `ETag`, so a PUT can replace what was read.
fn raw_response(state: &NodeState, key: &str, result: &GetResult) -> Response {
    let token = state.tokens.encode(key.as_bytes(), result.context());
    let mut response = if result.has_siblings() {
        let body = record_json(state, key, result);
        (StatusCode::MULTIPLE_CHOICES, axum::Json(body)).into_response()
    } else if let Some(value) = result.value() {
        let content_type = result.content_type().unwrap_or(OCTET_STREAM);
        let mut response = (StatusCode::OK, value).into_response();
        if let Ok(t) = HeaderValue::from_str(content_type) {
            response.headers_mut().insert(axum::http::header::CONTENT_TYPE, t);
        }
        response
    } else {
        (StatusCode::NOT_FOUND, format!("key {key:?} not found\n")).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&token) {
        headers.insert("x-halka-context", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("\"{token}\"")) {
        headers.insert(axum::http::header::ETAG, value);
    }
    response
}

/// The media type a PUT stores with its value: its `Content-Type`, when it names one.
fn content_type(headers: &HeaderMap) -> Result<Option<Box<str>>, ApiError> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(t) if halka_store::valid_content_type(t) => Ok(Some(t.into())),
        _ => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "Content-Type must be printable ASCII of at most {} bytes",
                halka_store::MAX_CONTENT_TYPE_BYTES
            ),
        )),
    }
}

async fn put_key(
    State(state): State<Arc<NodeState>>,
    key: Result<Path<String>, PathRejection>,
    params: Result<Query<KvParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body.map_err(|e| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "value is larger than the maximum of {} bytes",
                state.config.limits.max_value_bytes
            )
        } else {
            e.body_text()
        };
        ApiError(status, message)
    })?;
    let (key, params) = (path(key)?, query(params)?);
    let k = key_bytes(&state, &key)?;
    let quorum = write_quorum(&state, &params);
    let context = request_context(&state, &k, &headers, params.context)?;
    let expiry = match params.ttl_ms {
        None => Expiry::Never,
        Some(0) => {
            return Err(ApiError(StatusCode::BAD_REQUEST, "ttl_ms must be at least 1".into()));
        }
        Some(ms) => Expiry::At(
            ms.checked_mul(1000)
                .and_then(|us| state.coordinator.now_us().checked_add(us))
                .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "ttl_ms is too large".into()))?,
        ),
    };
    let condition = write_condition(&state, &k, &headers)?;
    // A compare-and-set replaces what its context saw, unless the client names another.
    let context = match (&condition, context) {
        (Condition::Unchanged(seen), None) => Some(seen.clone()),
        (_, context) => context,
    };
    let request = WriteRequest {
        condition,
        content_type: content_type(&headers)?,
        ..WriteRequest::new(Change::Put { value: body, expiry }, context)
    };
    let put = state.coordinator.apply(k, request, quorum).await?;
    observe("put", started);
    if put.outcome.refused.is_some() {
        let message = if headers.contains_key("if-match") {
            format!("key {key:?} changed since the context in If-Match was read")
        } else {
            format!("key {key:?} already holds a value (If-None-Match: *)")
        };
        return Err(ApiError(StatusCode::PRECONDITION_FAILED, message));
    }
    let mut body = receipt(&put);
    body["key"] = json!(key);
    body["context"] = json!(state.tokens.encode(key.as_bytes(), &put.context));
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

async fn delete_key(
    State(state): State<Arc<NodeState>>,
    key: Result<Path<String>, PathRejection>,
    params: Result<Query<KvParams>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (key, params) = (path(key)?, query(params)?);
    let k = key_bytes(&state, &key)?;
    let quorum = write_quorum(&state, &params);
    let context = request_context(&state, &k, &headers, params.context)?;
    let put = state.coordinator.write_with(k, None, context, quorum).await?;
    observe("delete", started);
    let mut body = receipt(&put);
    body["key"] = json!(key);
    body["deleted"] = json!(true);
    Ok(axum::Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Only keys starting with these bytes (UTF-8).
    prefix: Option<String>,
    /// About how many keys to list per page (default 100, at most 10,000).
    limit: Option<usize>,
    /// Where to continue: the `cursor` of the previous page.
    cursor: Option<u64>,
}

/// `GET /v1/kv?prefix=&limit=&cursor=`: one page of the cluster's live keys, in hash
/// order, and the cursor of the next page (absent after the last). A page may hold fewer
/// keys than `limit`, even none, before the end: continue until no cursor comes back.
async fn list_keys(
    State(state): State<Arc<NodeState>>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = params.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?.0;
    let limit = params.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError(StatusCode::BAD_REQUEST, "limit must be within 1..=10000".into()));
    }
    let members = state.coordinator.view().width() as u64;
    let estimate =
        state.local_keys().saturating_mul(members) / (state.config.replication.max(1) as u64);
    let max_missing = state.config.replication.saturating_sub(state.config.w);
    let page =
        state.coordinator.scan(params.cursor.unwrap_or(0), limit, estimate, max_missing).await?;
    let prefix = params.prefix.unwrap_or_default();
    let keys: Vec<Value> = page
        .keys
        .iter()
        .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
        .map(|(k, _)| {
            let (text, encoding) = json_value(k);
            json!({ "key": text, "encoding": encoding })
        })
        .collect();
    Ok(axum::Json(json!({ "keys": keys, "cursor": page.next })).into_response())
}

async fn health(State(state): State<Arc<NodeState>>) -> Response {
    axum::Json(json!({ "status": "ok", "node": state.config.node_id })).into_response()
}

async fn metrics() -> Response {
    match metrics_handle() {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => ApiError(StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable".into())
            .into_response(),
    }
}

async fn cluster(State(state): State<Arc<NodeState>>) -> Response {
    axum::Json(crate::status::NodeStatus::gather(&state).await).into_response()
}
