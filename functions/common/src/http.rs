//! HTTP building blocks shared by the functions: the one error type, JSON responses, request
//! parsing with limits, security headers and CORS.

use lambda_http::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use thiserror::Error;

/// Largest JSON or form body accepted. Every request of these APIs is a few hundred bytes; the
/// limit keeps a hostile client from making us parse megabytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The header a cookie-authenticated state-changing request must carry (DESIGN "Security model").
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Name of the cookie holding the JWT for the browser.
pub const ACCESS_TOKEN_COOKIE: &str = "access_token";

/// Every failure an API answers with. The status and `{"error","message"}` come from here; the
/// cause of an `Internal` error goes to the log only, never to the client.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Validation(String),
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method; `allow` lists those it takes (the `Allow`
    /// header RFC 9110 §15.5.6 requires).
    #[error("method not allowed; this route takes {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("too many requests, retry in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            code: "unauthorized",
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Validation(_) => "validation_error",
            ApiError::Unauthorized { code, .. } | ApiError::Forbidden { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The response for this error. Internal errors are logged here with their cause chain.
    pub fn into_response(self) -> Response<Body> {
        let message = match &self {
            ApiError::Internal(source) => {
                tracing::error!(error.cause_chain = %cause_chain(source.as_ref()), "internal error");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = json_response(
            self.status(),
            &ErrorBody {
                error: self.code(),
                message,
            },
        );
        match self {
            ApiError::MethodNotAllowed { allow } => {
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            ApiError::Unauthorized { .. } => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// A JSON response with the given status.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "response serialisation failed");
            br#"{"error":"internal_error","message":"internal server error"}"#.to_vec()
        }
    };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = status;
    resp
}

/// Headers every response carries (ASVS 3.4 / 14.4): no inline script in the CSP, no framing,
/// no MIME sniffing, HSTS for a year, no caching of API answers that may hold personal data.
pub fn apply_security_headers(headers: &mut HeaderMap) {
    let pairs: [(HeaderName, &'static str); 8] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// CORS with an exact allowlist (`ALLOWED_ORIGINS`); any other origin gets no CORS headers, so
/// the browser keeps its same-origin protection.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    pub fn new(origins: Vec<String>) -> Self {
        Cors { origins }
    }

    fn allowed<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        origin.filter(|o| self.origins.iter().any(|a| a == o))
    }

    pub fn apply(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(value) = self
            .allowed(origin)
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Retry-After"),
            );
        }
    }

    /// Answer to an `OPTIONS` preflight: 204 for an allowed origin, 403 otherwise.
    pub fn preflight(&self, origin: Option<&str>) -> Response<Body> {
        if self.allowed(origin).is_none() {
            return ApiError::forbidden("cors_origin_denied", "origin not allowed").into_response();
        }
        let mut resp = status_only(StatusCode::NO_CONTENT);
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type, X-CSRF-Token"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        resp
    }
}

impl Cors {
    /// Whether a request that sets or spends the session cookie comes from a page we serve or
    /// allow. A browser names the page's origin in `Origin` on every POST (and says
    /// `Sec-Fetch-Site`): it must be the API's own origin (`Host`) or in `ALLOWED_ORIGINS`.
    /// Without either header the client is not a browser page (curl, scripts), which a cross-site
    /// form cannot forge, so it passes. This is what stops login CSRF: a form on another site
    /// posting our login so the victim's browser holds the attacker's session.
    pub fn admits_page_of(&self, req: &Request) -> Result<(), ApiError> {
        let refused = || {
            ApiError::forbidden(
                "cross_site_request",
                "cross-site requests may not sign in or use the session cookie",
            )
        };
        match header_str(req, "origin") {
            Some(origin) => {
                let host = header_str(req, "host");
                let same_origin = origin
                    .split_once("://")
                    .is_some_and(|(_, authority)| Some(authority) == host);
                if same_origin || self.allowed(Some(origin)).is_some() {
                    Ok(())
                } else {
                    Err(refused())
                }
            }
            None => match header_str(req, "sec-fetch-site") {
                Some("cross-site" | "same-site") => Err(refused()),
                _ => Ok(()),
            },
        }
    }
}

/// `Ok` when `method` is one of `allow` (a comma-separated list, as the `Allow` header says
/// it), else the 405 that names them.
pub fn allowed_method(method: &Method, allow: &'static str) -> Result<(), ApiError> {
    if allow.split(',').any(|m| m.trim() == method.as_str()) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// Adds the security and CORS headers to a finished response.
pub fn finalize(mut resp: Response<Body>, cors: &Cors, origin: Option<&str>) -> Response<Body> {
    apply_security_headers(resp.headers_mut());
    cors.apply(origin, resp.headers_mut());
    resp
}

/// A request header as text, if present and visible ASCII.
pub fn header_str<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name`.
pub fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The client's address as seen by the server. `local-gateway` puts it in the request
/// extensions; behind API Gateway it comes from the request context.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

pub fn client_ip(req: &Request) -> String {
    if let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>() {
        return ip.to_string();
    }
    if req.extensions().get::<RequestContext>().is_some() {
        match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                if let Some(ip) = ctx.http.source_ip.as_deref() {
                    return ip.to_string();
                }
            }
            Some(RequestContext::ApiGatewayV1(ctx)) => {
                if let Some(ip) = ctx.identity.source_ip.as_deref() {
                    return ip.to_string();
                }
            }
            _ => {}
        }
    }
    "unknown".to_string()
}

/// Query string parameters (last value wins).
pub fn query_params(req: &Request) -> Result<HashMap<String, String>, ApiError> {
    match req.uri().query() {
        None => Ok(HashMap::new()),
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map(|v| v.into_iter().collect())
            .map_err(|_| ApiError::BadRequest("malformed query string".into())),
    }
}

/// An integer query parameter: `default` when absent, otherwise decimal digits with an optional
/// `-` (not `+5`, which `i64::from_str` would take and JSON Schema's `integer` does not) lying
/// in `min..=max` (pagination bounds are named by the callers).
pub fn query_int(
    q: &HashMap<String, String>,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => Some(v)
            .filter(|v| {
                let digits = v.strip_prefix('-').unwrap_or(v);
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::Validation(format!("{name} must be an integer in {min}..={max}"))
            }),
    }
}

fn body_bytes(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(bytes)
}

fn media_type(req: &Request) -> Option<String> {
    header_str(req, "content-type").map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// Parses a JSON body: malformed JSON is a 400, a well-formed body of the wrong shape a 422.
pub fn parse_json<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if let Some(mt) = media_type(req) {
        if mt != "application/json" {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    json_from_slice(body_bytes(req)?)
}

fn json_from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::Validation(format!("invalid request body: {e}"))
        }
        _ => ApiError::BadRequest("malformed JSON body".into()),
    })
}

/// Parses an `application/x-www-form-urlencoded` or JSON body (v5's `/api/token` took a form;
/// API clients often send JSON).
pub fn parse_form_or_json<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes = body_bytes(req)?;
    match media_type(req).as_deref() {
        Some("application/json") => json_from_slice(bytes),
        Some("application/x-www-form-urlencoded") | None => serde_urlencoded::from_bytes(bytes)
            .map_err(|e| ApiError::Validation(format!("invalid form body: {e}"))),
        Some(_) => Err(ApiError::UnsupportedMediaType),
    }
}

/// `#[serde(deserialize_with = "json_integer")]` for a count in a JSON body: any JSON number
/// with no fractional part, as JSON Schema's `integer` says (`160.0` is 160), not only the
/// numbers written without a point that `u64`'s own deserializer takes.
pub fn json_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::{Deserialize, Error};
    let n = serde_json::Number::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    // Integral floats up to 2^53 are exact; past that a count of bytes is out of every range.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=EXACT).contains(&f) => Ok(f as u64),
        _ => Err(D::Error::custom(format!(
            "invalid value: {n}, expected a non-negative integer"
        ))),
    }
}

/// `true` for methods that change state and so need CSRF protection under cookie auth.
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Set-Cookie` for the browser's copy of the access token (HttpOnly, Secure, SameSite=Strict).
pub fn access_token_cookie(token: &str, max_age_secs: u64) -> HeaderValue {
    let v = format!("{ACCESS_TOKEN_COOKIE}={token}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Strict");
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("access_token=; Path=/; Max-Age=0"))
}

/// `Set-Cookie` that removes the access token cookie.
pub fn clear_access_token_cookie() -> HeaderValue {
    HeaderValue::from_static("access_token=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The path split into segments: `/api/admin/users/x/approve` → `["api","admin","users","x","approve"]`.
pub fn segments(req: &Request) -> Vec<&str> {
    req.uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req_with(headers: &[(&str, &str)], body: &str) -> Request {
        let mut b = lambda_http::http::Request::builder().uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::from(body.to_string())).expect("request")
    }

    #[derive(serde::Deserialize, Debug)]
    struct Creds {
        #[allow(dead_code)]
        username: String,
    }

    #[test]
    fn malformed_json_is_400_and_wrong_shape_is_422() {
        let r = req_with(&[("content-type", "application/json")], "{nope");
        assert_eq!(
            parse_json::<Creds>(&r).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        let r = req_with(
            &[("content-type", "application/json")],
            r#"{"username": 3}"#,
        );
        assert_eq!(
            parse_json::<Creds>(&r).unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn oversized_body_is_413() {
        let big = format!(r#"{{"username":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        let r = req_with(&[("content-type", "application/json")], &big);
        assert_eq!(
            parse_json::<Creds>(&r).unwrap_err().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[derive(serde::Deserialize, Debug)]
    struct Count {
        #[serde(deserialize_with = "json_integer")]
        n: u64,
    }

    #[test]
    fn a_json_integer_may_be_written_with_a_zero_fraction() {
        let n = |body: &str| serde_json::from_str::<Count>(body).map(|c| c.n).ok();
        assert_eq!(n(r#"{"n": 160}"#), Some(160));
        assert_eq!(n(r#"{"n": 160.0}"#), Some(160));
        assert_eq!(n(r#"{"n": 1.6e2}"#), Some(160));
        assert_eq!(n(r#"{"n": 160.5}"#), None);
        assert_eq!(n(r#"{"n": -1}"#), None);
        assert_eq!(n(r#"{"n": 1e300}"#), None);
        assert_eq!(n(r#"{"n": "160"}"#), None);
    }

    #[test]
    fn cookie_is_found_among_others() {
        let r = req_with(&[("cookie", "a=1; access_token=tok; b=2")], "");
        assert_eq!(cookie(&r, "access_token"), Some("tok"));
        assert_eq!(cookie(&r, "missing"), None);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let e = ApiError::internal(std::io::Error::other("password=hunter2 at db"));
        let resp = e.into_response();
        let body = String::from_utf8(resp.body().as_ref().to_vec()).unwrap();
        assert!(!body.contains("hunter2"));
        assert!(body.contains(r#""error":"internal_error""#));
    }

    #[test]
    fn only_our_pages_and_non_browsers_may_use_the_session() {
        let cors = Cors::new(vec!["https://ok.example".into()]);
        let req = |headers: &[(&str, &str)]| {
            let mut b = lambda_http::http::Request::builder()
                .method("POST")
                .uri("/api/token");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(Body::Empty).expect("request")
        };
        let admitted = |h: &[(&str, &str)]| cors.admits_page_of(&req(h)).is_ok();
        assert!(admitted(&[]), "curl sends no Origin");
        assert!(admitted(&[("origin", "https://ok.example")]));
        assert!(admitted(&[
            ("origin", "http://127.0.0.1:8000"),
            ("host", "127.0.0.1:8000")
        ]));
        assert!(admitted(&[("sec-fetch-site", "same-origin")]));
        assert!(!admitted(&[("origin", "https://evil.example")]));
        assert!(!admitted(&[("origin", "null")]));
        assert!(!admitted(&[
            ("origin", "https://evil.example"),
            ("host", "ok.example")
        ]));
        assert!(!admitted(&[("sec-fetch-site", "cross-site")]));
    }

    #[test]
    fn unknown_origin_gets_no_cors_headers() {
        let cors = Cors::new(vec!["https://ok.example".into()]);
        let mut h = HeaderMap::new();
        cors.apply(Some("https://evil.example"), &mut h);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        cors.apply(Some("https://ok.example"), &mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://ok.example");
    }
}
