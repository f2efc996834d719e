//! Users on HTTP: the same users and rules as on RESP, presented with Basic
//! authentication (`Authorization: Basic base64(user:password)`, what `curl -u` sends).
//!
//! Basic, not bearer tokens: it needs nothing issued or revoked beside the users
//! themselves, every HTTP client speaks it, and with TLS it crosses the network no less
//! safely than `AUTH` does. Each request is mapped to the Redis command it does (a GET of
//! a key is `GET key`, a PUT `SET key`, a cluster change `HALKA.CLUSTER`), so that one rule
//! means the same on both protocols. `/health` is open to all: load balancers probe it.

use crate::acl::DEFAULT_USER;
use crate::acl::log::Reason;
use crate::acl::user::Denied;
use crate::state::NodeState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use std::sync::Arc;

/// Lets a request through if its user may do what it asks.
pub async fn authorize(
    State(state): State<Arc<NodeState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some((name, args)) = as_command(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let credentials = match basic_credentials(request.headers()) {
        Ok(c) => c,
        Err(why) => return unauthorized(why),
    };
    let user = match credentials {
        None if state.acl.open() => return next.run(request).await,
        None if state.acl.default_needs_no_password() => DEFAULT_USER.to_string(),
        None => {
            return unauthorized(
                "authentication required: send a user and password (curl -u USER:PASSWORD)",
            );
        }
        Some((user, password)) => {
            let source = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0);
            if !state.door().log_in(source, "http", &user, password.as_bytes()).await {
                return unauthorized("invalid username-password pair or user is disabled");
            }
            user
        }
    };
    let Some(rules) = state.acl.user(&user) else {
        return unauthorized("invalid username-password pair or user is disabled");
    };
    match rules.check(name, &args) {
        Ok(()) => next.run(request).await,
        Err(denied) => forbidden(&state, &user, name, denied),
    }
}

/// The Redis command a request does, and its key; `None` for a request no rule covers
/// (`/health`, or a path that answers 404).
pub fn as_command(method: &Method, path: &str) -> Option<(&'static str, Vec<Bytes>)> {
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        let key = percent_encoding::percent_decode_str(key).collect::<Vec<u8>>();
        let name = match *method {
            Method::PUT => "SET",
            Method::DELETE => "DEL",
            _ => "GET",
        };
        return Some((name, vec![Bytes::from(key)]));
    }
    let name = match path {
        "/v1/kv" => "SCAN",
        "/metrics" => "INFO",
        "/v1/cluster" | "/v1/cluster/status" | "/v1/cluster/plan" => "HALKA.STATUS",
        p if p.starts_with("/v1/cluster/") => "HALKA.CLUSTER",
        _ => return None,
    };
    Some((name, Vec::new()))
}

/// The user and password of a Basic `Authorization` header, if one was sent.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let text = value.to_str().map_err(|_| "the Authorization header is not text")?;
    let encoded = text
        .strip_prefix("Basic ")
        .ok_or("only Basic authorization is accepted (curl -u USER:PASSWORD)")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the Basic credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
    let (user, password) =
        decoded.split_once(':').ok_or("the Basic credentials are not USER:PASSWORD")?;
    Ok(Some((user.to_string(), password.to_string())))
}

fn unauthorized(why: &str) -> Response {
    let body = axum::Json(serde_json::json!({ "error": format!("WRONGPASS {why}") }));
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Basic realm=\"halka\"".parse().expect("a header"));
    response
}

fn forbidden(state: &NodeState, user: &str, name: &str, denied: Denied) -> Response {
    let lower = name.to_ascii_lowercase();
    let message = match denied {
        Denied::Command => {
            state.acl_log.note(Reason::Command, "http", &lower, user, "");
            format!("NOPERM User {user} has no permissions to run the '{lower}' command")
        }
        Denied::Key(key) => {
            let key = String::from_utf8_lossy(&key).into_owned();
            state.acl_log.note(Reason::Key, "http", &key, user, "");
            format!("NOPERM User {user} has no permissions to access the '{key}' key")
        }
    };
    (StatusCode::FORBIDDEN, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_request_maps_to_the_redis_command_on_its_decoded_key() {
        let (name, args) = as_command(&Method::PUT, "/v1/kv/a%20b").unwrap();
        assert_eq!((name, args[0].as_ref()), ("SET", &b"a b"[..]));
        assert_eq!(as_command(&Method::DELETE, "/v1/kv/k").unwrap().0, "DEL");
        assert_eq!(as_command(&Method::POST, "/v1/cluster/join").unwrap().0, "HALKA.CLUSTER");
        assert!(as_command(&Method::GET, "/health").is_none());
    }

    #[test]
    fn basic_credentials_are_read_and_other_schemes_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic YWxpY2U6cHc6eA==".parse().unwrap());
        assert_eq!(basic_credentials(&h), Ok(Some(("alice".into(), "pw:x".into()))));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(basic_credentials(&h).is_err());
    }
}
