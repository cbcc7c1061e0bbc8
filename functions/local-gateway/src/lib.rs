//! `local-gateway`: every HTTP function of pcap-analyzer behind one local port, with the same
//! routes as API Gateway, so the UI, curl and the end-to-end tests talk to one address.
//!
//! Each request is turned into the `lambda_http::Request` a Lambda would get (plus the client
//! address) and handed to the function that owns its path.
//!
//! [`pipeline`] plays the rest of AWS: it polls the real SQS queue (LocalStack) and hands each
//! message to the analyzer as the `SqsEvent` Lambda would, and runs the janitor on a timer.
//!
//! [`web`] serves the browser UI (`web/`) on every path outside `/api/`.
#![deny(unsafe_code)]

pub mod pipeline;
pub mod web;

#[cfg(test)]
mod openapi_contract;

use common::http::{finalize, ClientIp, MAX_BODY_BYTES};
use common::ApiError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tasks_api::State;
use tokio::net::TcpListener;
pub use web::WebRoot;

/// The HTTP functions, by their binary (and `template.yaml` `Metadata: Binary`) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    AuthApi,
    AdminApi,
    TasksApi,
}

impl Function {
    pub fn binary(self) -> &'static str {
        match self {
            Function::AuthApi => "auth-api",
            Function::AdminApi => "admin-api",
            Function::TasksApi => "tasks-api",
        }
    }
}

/// One API Gateway route: method, path template (`{id}` is one path segment) and its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub function: Function,
}

const fn route(method: &'static str, path: &'static str, function: Function) -> Route {
    Route {
        method,
        path,
        function,
    }
}

/// Every route, as the HttpApi of `template.yaml` declares them; a test in `infra/check` holds
/// this table, the template and `openapi.yaml` to the same set.
pub const ROUTES: &[Route] = &[
    route("GET", "/api/health", Function::AuthApi),
    route("GET", "/api/openapi.yaml", Function::AuthApi),
    route("POST", "/api/register", Function::AuthApi),
    route("POST", "/api/token", Function::AuthApi),
    route("POST", "/api/logout", Function::AuthApi),
    route("GET", "/api/users/me", Function::AuthApi),
    route("PUT", "/api/users/me", Function::AuthApi),
    route("GET", "/api/csrf/token", Function::AuthApi),
    route("GET", "/api/users", Function::AdminApi),
    route("POST", "/api/admin/users", Function::AdminApi),
    route("PUT", "/api/admin/users/{id}/approve", Function::AdminApi),
    route("PUT", "/api/admin/users/{id}/block", Function::AdminApi),
    route("PUT", "/api/admin/users/{id}/unblock", Function::AdminApi),
    route("DELETE", "/api/admin/users/{id}", Function::AdminApi),
    route("POST", "/api/admin/users/bulk/approve", Function::AdminApi),
    route("POST", "/api/admin/users/bulk/block", Function::AdminApi),
    route("POST", "/api/admin/users/bulk/unblock", Function::AdminApi),
    route(
        "POST",
        "/api/admin/users/{id}/reset-password",
        Function::AdminApi,
    ),
    route("POST", "/api/uploads", Function::TasksApi),
    route("GET", "/api/uploads/{id}", Function::TasksApi),
    route("POST", "/api/uploads/{id}/complete", Function::TasksApi),
    route("DELETE", "/api/uploads/{id}", Function::TasksApi),
    route("GET", "/api/tasks", Function::TasksApi),
    route("GET", "/api/history", Function::TasksApi),
    route("GET", "/api/status/{id}", Function::TasksApi),
    route("GET", "/api/progress/{id}", Function::TasksApi),
    route("GET", "/api/reports/{id}/html", Function::TasksApi),
    route("GET", "/api/reports/{id}/json", Function::TasksApi),
    route("DELETE", "/api/reports/{id}", Function::TasksApi),
    route("GET", "/api/queue/status", Function::TasksApi),
];

/// The function owning `path` (whatever the method: the function itself answers 405).
pub fn function_for(path: &str) -> Option<Function> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES
        .iter()
        .find(|r| {
            let template: Vec<&str> = r.path.split('/').collect();
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .map(|r| r.function)
}

/// Routes a request to the function owning its path, as API Gateway does.
pub async fn dispatch(
    state: &State,
    req: lambda_http::Request,
) -> lambda_http::Response<lambda_http::Body> {
    match function_for(req.uri().path()) {
        Some(Function::TasksApi) => tasks_api::handle(state, req).await,
        Some(Function::AdminApi) => admin_api::handle(&state.auth, req).await,
        // Unknown paths too: auth-api answers them with the common 404 shape.
        Some(Function::AuthApi) | None => auth_api::handle(&state.auth, req).await,
    }
}

/// `true` for the paths API Gateway sends to the functions; everything else is the UI.
fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

async fn adapt(
    state: &State,
    web: Option<&WebRoot>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    if let Some(web) = web.filter(|_| !is_api_path(req.uri().path())) {
        return web.respond(req.method(), req.uri().path());
    }
    let (parts, body) = req.into_parts();
    // Same cap as the handlers': API Gateway itself refuses large payloads before a Lambda runs.
    let resp = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let body = if bytes.is_empty() {
                lambda_http::Body::Empty
            } else {
                lambda_http::Body::from(bytes.to_vec())
            };
            let mut lreq = lambda_http::Request::from_parts(parts, body);
            lreq.extensions_mut().insert(ClientIp(peer.ip()));
            dispatch(state, lreq).await
        }
        Err(_) => {
            let origin = parts.headers.get("origin").and_then(|v| v.to_str().ok());
            finalize(
                ApiError::PayloadTooLarge.into_response(),
                &state.auth.cors,
                origin,
            )
        }
    };
    let (parts, body) = resp.into_parts();
    hyper::Response::from_parts(parts, Full::new(Bytes::from(body.as_ref().to_vec())))
}

/// Serves the API over HTTP/1.1 on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<State>) -> std::io::Result<()> {
    serve_with_web(listener, state, None).await
}

/// Serves the API and, when `web` is given, the UI on every other path.
pub async fn serve_with_web(
    listener: TcpListener,
    state: Arc<State>,
    web: Option<Arc<WebRoot>>,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let state = state.clone();
        let web = web.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let web = web.clone();
                async move { Ok::<_, Infallible>(adapt(&state, web.as_deref(), req, peer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
}
