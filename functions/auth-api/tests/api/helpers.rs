//! `spawn_app` for the account functions: a fresh database with the real migrations, the real
//! handlers called in-process with the `lambda_http::Request` a Lambda would receive.
//!
//! Shared by the auth-api and admin-api suites (the latter includes this file by path), so
//! each suite uses only part of it.
#![allow(dead_code)]

use auth_api::State;
use db::test_support::{fresh_database, TestDatabase};
use db::users::{self, NewUser, Role, User};
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request};
use serde_json::Value;

pub const PASSWORD: &str = "Correct-Horse-Battery-9";

pub struct TestApp {
    pub state: State,
    pub db: TestDatabase,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// The value of `access_token` in the `Set-Cookie` header.
    pub fn cookie_token(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.strip_prefix("access_token=")
                    .map(|r| r.split(';').next().unwrap_or("").to_string())
            })
    }
}

pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str, Option<&'a str>),
}

pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub auth: Auth<'a>,
    pub content_type: Option<&'a str>,
    pub body: Option<String>,
    pub headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Req<'a> {
    pub fn new(method: &'a str, path: &'a str) -> Self {
        Req {
            method,
            path,
            auth: Auth::None,
            content_type: None,
            body: None,
            headers: Vec::new(),
        }
    }
    pub fn json(mut self, v: Value) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(v.to_string());
        self
    }
    pub fn raw(mut self, content_type: &'a str, body: impl Into<String>) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body.into());
        self
    }
    pub fn bearer(mut self, token: &'a str) -> Self {
        self.auth = Auth::Bearer(token);
        self
    }
    pub fn cookie(mut self, token: &'a str, csrf: Option<&'a str>) -> Self {
        self.auth = Auth::Cookie(token, csrf);
        self
    }
    pub fn header(mut self, k: &'a str, v: &'a str) -> Self {
        self.headers.push((k, v));
        self
    }

    pub fn build(self) -> Request {
        let mut b = lambda_http::http::Request::builder()
            .method(self.method)
            .uri(self.path);
        match self.auth {
            Auth::None => {}
            Auth::Bearer(t) => b = b.header("authorization", format!("Bearer {t}")),
            Auth::Cookie(t, csrf) => {
                b = b.header("cookie", format!("theme=dark; access_token={t}"));
                if let Some(c) = csrf {
                    b = b.header("x-csrf-token", c);
                }
            }
        }
        if let Some(ct) = self.content_type {
            b = b.header("content-type", ct);
        }
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        let body = self.body.map(Body::from).unwrap_or(Body::Empty);
        b.body(body).expect("valid request")
    }
}

pub type Dispatch = for<'s> fn(
    &'s State,
    Request,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = lambda_http::Response<Body>> + Send + 's>,
>;

pub fn auth_dispatch<'s>(
    state: &'s State,
    req: Request,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = lambda_http::Response<Body>> + Send + 's>> {
    Box::pin(auth_api::handle(state, req))
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        let db = fresh_database().await;
        let state = State::with_pool(db.settings(overrides), &db.api_keys(), db.app_pool.clone());
        TestApp { state, db }
    }

    pub async fn send_via(&self, dispatch: Dispatch, req: Req<'_>) -> TestResponse {
        let resp = dispatch(&self.state, req.build()).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = String::from_utf8_lossy(resp.body().as_ref()).to_string();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn send(&self, req: Req<'_>) -> TestResponse {
        self.send_via(auth_dispatch, req).await
    }

    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        let form = format!("username={username}&password={}", urlencode(password));
        self.send(Req::new("POST", "/api/token").raw("application/x-www-form-urlencoded", form))
            .await
    }

    /// Logs in and returns the bearer token, failing the test otherwise.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let r = self.login(username, password).await;
        assert_eq!(r.status, 200, "login of {username} failed: {}", r.raw);
        r.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn register(&self, username: &str, password: &str) -> TestResponse {
        self.send(Req::new("POST", "/api/register").json(serde_json::json!({
            "username": username,
            "email": format!("{username}@example.com"),
            "password": password,
        })))
        .await
    }

    /// A user straight in the database (approved or not), with [`PASSWORD`].
    pub async fn insert_user(&self, username: &str, role: Role, approved: bool) -> User {
        let client = self.db.pool.get().await.unwrap();
        let hash = security::password::hash_password(PASSWORD).unwrap();
        users::insert(
            &client,
            &NewUser {
                username: username.into(),
                email: format!("{username}@example.com"),
                hashed_password: hash,
                role,
                is_approved: approved,
                approved_by: None,
                password_must_change: false,
            },
        )
        .await
        .unwrap()
    }

    pub async fn user(&self, username: &str) -> Option<User> {
        let client = self.db.pool.get().await.unwrap();
        users::find_by_username(&client, username).await.unwrap()
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
