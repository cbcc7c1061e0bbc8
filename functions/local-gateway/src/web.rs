//! The browser UI (`web/`) served as static files next to the API, so one local address is the
//! whole product. Only plain file names with a known extension are served: no directory
//! listing, no dot-files, no `..`, nothing percent-encoded.

use common::http::apply_security_headers;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};
use std::path::PathBuf;

/// Longest static path accepted; the UI's own paths are a few dozen characters.
const MAX_STATIC_PATH_CHARS: usize = 256;

/// Content types by extension. Anything else is not served, so a stray file in `web/` (a
/// package manifest, a test) never leaves the machine with a guessed type.
const CONTENT_TYPES: [(&str, &str); 9] = [
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("ico", "image/x-icon"),
    ("json", "application/json"),
    ("txt", "text/plain; charset=utf-8"),
    ("woff2", "font/woff2"),
];

/// Folders of `web/` that hold tooling, not UI, and are never served.
const PRIVATE_DIRS: [&str; 2] = ["node_modules", "tests"];

/// The UI's folder and the Content-Security-Policy its pages get.
#[derive(Debug, Clone)]
pub struct WebRoot {
    dir: PathBuf,
    csp: HeaderValue,
}

impl WebRoot {
    /// `object_store_origin` is where presigned URLs point (the S3 endpoint): the page PUTs
    /// captures there (`connect-src`) and shows HTML reports from there in a frame (`frame-src`).
    pub fn new(
        dir: PathBuf,
        object_store_origin: &str,
    ) -> Result<WebRoot, header::InvalidHeaderValue> {
        let csp = HeaderValue::from_str(&web_csp(object_store_origin))?;
        Ok(WebRoot { dir, csp })
    }

    /// Answers a request for a UI path (anything outside `/api/`).
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut resp = self.plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some((file, content_type)) = self.resolve(path) else {
            return self.plain(StatusCode::NOT_FOUND, "not found");
        };
        match std::fs::read(&file) {
            Ok(bytes) => {
                let body = if method == Method::HEAD {
                    Bytes::new()
                } else {
                    Bytes::from(bytes)
                };
                self.finish(StatusCode::OK, content_type, body)
            }
            Err(_) => self.plain(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn resolve(&self, path: &str) -> Option<(PathBuf, &'static str)> {
        if path.len() > MAX_STATIC_PATH_CHARS {
            return None;
        }
        let rel = match path.trim_start_matches('/') {
            "" => "index.html",
            p => p,
        };
        let mut file = self.dir.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let plain = !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !plain || (i == 0 && parts.len() > 1 && PRIVATE_DIRS.contains(part)) {
                return None;
            }
            file.push(part);
        }
        let ext = rel.rsplit_once('.')?.1;
        let content_type = CONTENT_TYPES
            .iter()
            .find(|(e, _)| *e == ext)
            .map(|(_, t)| *t)?;
        file.is_file().then_some((file, content_type))
    }

    fn plain(&self, status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
        self.finish(
            status,
            "text/plain; charset=utf-8",
            Bytes::from_static(text.as_bytes()),
        )
    }

    fn finish(
        &self,
        status: StatusCode,
        content_type: &'static str,
        body: Bytes,
    ) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        apply_security_headers(h);
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // The files change with every checkout; revalidating keeps a stale script from running
        // against a newer API. Nothing personal is in them, so they may be stored.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

/// The API's policy (no inline script or style, no plugins, no framing of us) plus the object
/// store: uploads go straight to presigned S3 URLs and the HTML report is shown in a frame
/// from one.
pub fn web_csp(object_store_origin: &str) -> String {
    let s3 = object_store_origin.trim_end_matches('/');
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {s3}; frame-src 'self' {s3}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The origin (`scheme://host[:port]`) of an endpoint URL such as `AWS_ENDPOINT_URL`.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty() && (scheme == "http" || scheme == "https"))
        .then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_of_an_endpoint_keeps_scheme_host_and_port_only() {
        assert_eq!(
            origin_of("http://127.0.0.1:4566/").as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(origin_of("ftp://x").as_deref(), None);
        assert_eq!(origin_of("nonsense").as_deref(), None);
    }

    #[test]
    fn the_ui_policy_allows_the_object_store_for_uploads_and_report_frames_only() {
        let csp = web_csp("http://127.0.0.1:4566");
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:4566;"));
        assert!(csp.contains("frame-src 'self' http://127.0.0.1:4566;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
