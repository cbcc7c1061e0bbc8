//! auth-api against the real Postgres: each test has its own database with the real migrations.

mod helpers;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use db::users::{self, Role};
use helpers::{Req, TestApp, PASSWORD};
use security::jwt::{now_secs, Claims, TokenService, AUDIENCE, ISSUER};
use serde_json::json;
use std::time::{Duration, Instant};

const SECURITY_HEADERS: [&str; 5] = [
    "content-security-policy",
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
];

fn assert_error_shape(r: &helpers::TestResponse) {
    assert!(
        r.body["error"].is_string() && r.body["message"].is_string(),
        "not the error shape: {}",
        r.raw
    );
}

// ------------------------------------------------------------------ health and headers

#[tokio::test]
async fn health_reports_a_connected_database() {
    let app = TestApp::spawn().await;
    let r = app.send(Req::new("GET", "/api/health")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["database"], "connected");
}

#[tokio::test]
async fn every_response_carries_security_headers_and_errors_have_one_shape() {
    let app = TestApp::spawn().await;
    for req in [
        Req::new("GET", "/api/health"),
        Req::new("GET", "/api/nowhere"),
        Req::new("DELETE", "/api/token"),
        Req::new("GET", "/api/users/me"),
        Req::new("POST", "/api/register").raw("application/json", "{"),
    ] {
        let r = app.send(req).await;
        for h in SECURITY_HEADERS {
            assert!(
                r.header(h).is_some(),
                "{h} missing on a {} answer",
                r.status
            );
        }
        assert!(!r
            .header("content-security-policy")
            .unwrap()
            .contains("unsafe-inline"));
        if r.status >= 400 {
            assert_error_shape(&r);
        }
    }
}

#[tokio::test]
async fn cors_answers_only_allowed_origins() {
    let app = TestApp::spawn().await;
    let ok = app
        .send(Req::new("GET", "/api/health").header("origin", "http://localhost:8000"))
        .await;
    let evil = app
        .send(Req::new("GET", "/api/health").header("origin", "https://evil.example"))
        .await;
    let preflight = app
        .send(Req::new("OPTIONS", "/api/token").header("origin", "https://evil.example"))
        .await;
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://localhost:8000")
    );
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(preflight.status, 403);
}

// ------------------------------------------------------------------ registration and login

#[tokio::test]
async fn register_returns_the_created_user_with_its_id_pending_approval() {
    let app = TestApp::spawn().await;
    let r = app.register("Alice", "SecurePassword123!").await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert!(uuid::Uuid::parse_str(r.body["id"].as_str().unwrap()).is_ok());
    assert_eq!(r.body["username"], "alice");
    assert_eq!(r.body["is_approved"], false);
    assert!(r.body.get("hashed_password").is_none());
}

#[tokio::test]
async fn register_refuses_duplicates_with_409_and_weak_passwords_with_400() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register("bob", "SecurePassword123!").await.status, 201);
    let duplicate = app.register("BOB", "SecurePassword123!").await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.body["error"], "conflict");
    let weak = app.register("carol", "password1234").await;
    assert_eq!(weak.status, 400);
    assert_error_shape(&weak);
}

#[tokio::test]
async fn unapproved_user_gets_pending_approval_only_after_the_password_verified() {
    let app = TestApp::spawn().await;
    app.register("alice", "SecurePassword123!").await;

    let wrong = app.login("alice", "Wrong-Password-123").await;
    let right = app.login("alice", "SecurePassword123!").await;

    assert_eq!(wrong.status, 401);
    assert!(!wrong.raw.contains("pending"));
    assert_eq!(right.status, 403);
    assert_eq!(right.error_code(), "pending_approval");
}

#[tokio::test]
async fn approved_user_logs_in_with_a_form_or_json_and_reads_its_profile() {
    let app = TestApp::spawn().await;
    app.insert_user("dave", Role::User, true).await;

    let form = app.login("dave", PASSWORD).await;
    let json_login = app
        .send(
            Req::new("POST", "/api/token").json(json!({"username": "dave", "password": PASSWORD})),
        )
        .await;

    assert_eq!(form.status, 200, "{}", form.raw);
    assert_eq!(form.body["token_type"], "bearer");
    assert_eq!(form.body["expires_in"], 1800);
    let cookie = form.headers.get("set-cookie").unwrap().to_str().unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert_eq!(json_login.status, 200);
    let token = form.body["access_token"].as_str().unwrap();
    let me = app
        .send(Req::new("GET", "/api/users/me").bearer(token))
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["username"], "dave");
    assert!(me.body["last_login"].is_string());
}

#[tokio::test]
async fn login_for_an_unknown_user_answers_like_a_wrong_password() {
    let app = TestApp::spawn().await;
    app.insert_user("erin", Role::User, true).await;
    // Warm up the dummy hash so its one-time creation does not count.
    app.login("nobody-warmup", "Whatever-Password-1").await;

    let mut unknown_t = Vec::new();
    let mut wrong_t = Vec::new();
    let (mut unknown, mut wrong) = (None, None);
    for i in 0..3 {
        let t = Instant::now();
        unknown = Some(app.login(&format!("ghost{i}"), "Whatever-Password-1").await);
        unknown_t.push(t.elapsed());
        let t = Instant::now();
        wrong = Some(app.login("erin", "Whatever-Password-1").await);
        wrong_t.push(t.elapsed());
    }
    let (unknown, wrong) = (unknown.unwrap(), wrong.unwrap());

    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
    unknown_t.sort();
    wrong_t.sort();
    let (u, w) = (unknown_t[1].as_secs_f64(), wrong_t[1].as_secs_f64());
    // Both run one argon2 verification; a missing one would be ~100x faster.
    assert!(
        u > w / 3.0 && u < w * 3.0,
        "unknown {u:.4}s vs wrong password {w:.4}s"
    );
}

#[tokio::test]
async fn sixth_failed_login_in_the_window_gets_429_with_retry_after() {
    let app = TestApp::spawn().await;
    app.insert_user("frank", Role::User, true).await;

    for attempt in 1..=5 {
        let r = app.login("frank", "Not-The-Password-1").await;
        assert_eq!(r.status, 401, "attempt {attempt}");
    }
    let sixth = app.login("frank", PASSWORD).await;

    assert_eq!(sixth.status, 429, "{}", sixth.raw);
    assert_error_shape(&sixth);
    let wait: u64 = sixth
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
}

#[tokio::test]
async fn user_imported_with_a_v5_bcrypt_hash_logs_in_and_is_moved_to_argon2id() {
    // Arrange: a v5 account as `pcap_analyzer db import-v4` brings it over (Python bcrypt, cost 12).
    let app = TestApp::spawn().await;
    let user = app.insert_user("legacy", Role::User, true).await;
    let v5_hash = "$2b$12$8F5x0Ktikz56eqxr4hLlYuGgNS6zSVOJWT91iZ2i0kcyi8Bw3FTJe";
    let client = app.db.pool.get().await.unwrap();
    users::update_hash(&client, user.id, v5_hash).await.unwrap();

    // Act
    let wrong = app.login("legacy", "Legacy-V5-Password-43").await;
    let first = app.login("legacy", "Legacy-V5-Password-42").await;
    let second = app.login("legacy", "Legacy-V5-Password-42").await;

    // Assert
    assert_eq!(wrong.status, 401, "{}", wrong.raw);
    assert_eq!(first.status, 200, "{}", first.raw);
    let stored = app.user("legacy").await.unwrap().hashed_password;
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert_eq!(second.status, 200, "{}", second.raw);
}

#[tokio::test]
async fn successful_login_resets_the_account_failure_count() {
    let app = TestApp::spawn().await;
    app.insert_user("gina", Role::User, true).await;
    for _ in 0..4 {
        app.login("gina", "Not-The-Password-1").await;
    }
    assert_eq!(app.login("gina", PASSWORD).await.status, 200);
    for _ in 0..4 {
        assert_eq!(app.login("gina", "Not-The-Password-1").await.status, 401);
    }
    assert_eq!(app.login("gina", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn blocked_user_is_refused_at_login_and_its_token_dies_at_once() {
    let app = TestApp::spawn().await;
    let user = app.insert_user("hank", Role::User, true).await;
    let token = app.token("hank", PASSWORD).await;

    let client = app.db.pool.get().await.unwrap();
    users::set_active(&client, user.id, false).await.unwrap();

    let me = app
        .send(Req::new("GET", "/api/users/me").bearer(&token))
        .await;
    let wrong = app.login("hank", "Not-The-Password-1").await;
    let right = app.login("hank", PASSWORD).await;
    assert_eq!(me.status, 401);
    assert_eq!(wrong.status, 401);
    assert_eq!(right.status, 403);
    assert_eq!(right.error_code(), "account_blocked");
}

// ------------------------------------------------------------------ token attacks

fn forged_claims(app: &TestApp, user: &db::users::User) -> Claims {
    let now = now_secs();
    let _ = app;
    Claims {
        sub: user.id.to_string(),
        username: user.username.clone(),
        role: "admin".into(),
        tv: user.token_version,
        iat: now,
        nbf: now,
        exp: now + 600,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        jti: "forged".into(),
    }
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_all_401() {
    let app = TestApp::spawn().await;
    let user = app.insert_user("ivan", Role::User, true).await;
    let good = app.token("ivan", PASSWORD).await;
    let ours = TokenService::new(app.db.api_keys().secret_key.expose().as_bytes());

    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims(&app, &user)).unwrap());
    let alg_none = format!("{header_none}.{payload}.");

    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[5] ^= 0x01;
    let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));

    let other_key = TokenService::new(b"some-other-secret-key-0123456789abcdef")
        .sign(&forged_claims(&app, &user))
        .unwrap();

    let mut expired = forged_claims(&app, &user);
    expired.iat -= 7200;
    expired.nbf -= 7200;
    expired.exp = now_secs() - 3600;
    let expired = ours.sign(&expired).unwrap();

    let mut wrong_aud = forged_claims(&app, &user);
    wrong_aud.aud = "another-api".into();
    let wrong_aud = ours.sign(&wrong_aud).unwrap();

    let garbage = "x".repeat(10_000);
    assert_eq!(
        app.send(Req::new("GET", "/api/users/me").bearer(&good))
            .await
            .status,
        200
    );
    for (name, token) in [
        ("alg none", alg_none.as_str()),
        ("flipped signature bit", flipped.as_str()),
        ("another key", other_key.as_str()),
        ("expired", expired.as_str()),
        ("wrong aud", wrong_aud.as_str()),
        ("garbage", garbage.as_str()),
    ] {
        let r = app
            .send(Req::new("GET", "/api/users/me").bearer(token))
            .await;
        assert_eq!(r.status, 401, "{name}: {}", r.raw);
        assert_error_shape(&r);
        let c = app
            .send(Req::new("GET", "/api/users/me").cookie(token, None))
            .await;
        assert_eq!(c.status, 401, "{name} as cookie");
    }
}

#[tokio::test]
async fn token_issued_before_a_password_change_is_refused_and_the_new_one_works() {
    let app = TestApp::spawn().await;
    app.insert_user("judy", Role::User, true).await;
    let old = app.token("judy", PASSWORD).await;
    let other_session = app.token("judy", PASSWORD).await;

    let r =
        app.send(Req::new("PUT", "/api/users/me").bearer(&old).json(
            json!({"current_password": PASSWORD, "new_password": "Brand-New-Passphrase-42"}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let fresh = r.body["access_token"].as_str().unwrap().to_string();

    for stale in [&old, &other_session] {
        assert_eq!(
            app.send(Req::new("GET", "/api/users/me").bearer(stale))
                .await
                .status,
            401
        );
    }
    assert_eq!(
        app.send(Req::new("GET", "/api/users/me").bearer(&fresh))
            .await
            .status,
        200
    );
    assert_eq!(app.login("judy", PASSWORD).await.status, 401);
    assert_eq!(
        app.login("judy", "Brand-New-Passphrase-42").await.status,
        200
    );
}

#[tokio::test]
async fn password_change_refuses_a_wrong_current_password_and_recent_reuse() {
    let app = TestApp::spawn().await;
    app.insert_user("kate", Role::User, true).await;
    let token = app.token("kate", PASSWORD).await;
    let put = |cur: &str, new: &str| {
        Req::new("PUT", "/api/users/me").json(json!({"current_password": cur, "new_password": new}))
    };

    let wrong = app
        .send(put("Not-The-Password-1", "Brand-New-Passphrase-42").bearer(&token))
        .await;
    let first = app
        .send(put(PASSWORD, "Brand-New-Passphrase-42").bearer(&token))
        .await;
    let token = first.body["access_token"].as_str().unwrap().to_string();
    let back = app
        .send(put("Brand-New-Passphrase-42", PASSWORD).bearer(&token))
        .await;

    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.body["error"], "invalid_current_password");
    assert_eq!(first.status, 200);
    assert_eq!(back.status, 400, "{}", back.raw);
    assert!(back.raw.contains("last 5"));
}

#[tokio::test]
async fn token_of_a_deleted_user_is_refused() {
    let app = TestApp::spawn().await;
    let user = app.insert_user("leo", Role::User, true).await;
    let token = app.token("leo", PASSWORD).await;
    let client = app.db.pool.get().await.unwrap();
    users::delete(&client, user.id).await.unwrap();
    assert_eq!(
        app.send(Req::new("GET", "/api/users/me").bearer(&token))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn logout_revokes_the_token_and_clears_the_cookie() {
    let app = TestApp::spawn().await;
    app.insert_user("mia", Role::User, true).await;
    let token = app.token("mia", PASSWORD).await;

    let r = app
        .send(Req::new("POST", "/api/logout").bearer(&token))
        .await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body["revoked"], true);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        app.send(Req::new("GET", "/api/users/me").bearer(&token))
            .await
            .status,
        401
    );
}

// ------------------------------------------------------------------ CSRF

#[tokio::test]
async fn cookie_authenticated_put_needs_a_valid_csrf_token_while_bearer_does_not() {
    let app = TestApp::spawn().await;
    app.insert_user("nina", Role::User, true).await;
    let login = app.login("nina", PASSWORD).await;
    let cookie = login.cookie_token().expect("cookie");
    let change = |new: &str| {
        Req::new("PUT", "/api/users/me")
            .json(json!({"current_password": PASSWORD, "new_password": new}))
    };

    // Reads with the cookie alone are fine.
    assert_eq!(
        app.send(Req::new("GET", "/api/users/me").cookie(&cookie, None))
            .await
            .status,
        200
    );
    let csrf = app
        .send(Req::new("GET", "/api/csrf/token").cookie(&cookie, None))
        .await;
    assert_eq!(csrf.body["header_name"], "X-CSRF-Token");
    let csrf = csrf.body["csrf_token"].as_str().unwrap().to_string();

    let missing = app
        .send(change("Brand-New-Passphrase-42").cookie(&cookie, None))
        .await;
    let forged = app
        .send(change("Brand-New-Passphrase-42").cookie(&cookie, Some("1999999999.AAAA.AAAA")))
        .await;
    assert_eq!((missing.status, missing.error_code()), (403, "csrf_failed"));
    assert_eq!(forged.status, 403);

    // The same request with a bearer token needs no CSRF token.
    let bearer = login.body["access_token"].as_str().unwrap();
    let with_bearer = app
        .send(change("Brand-New-Passphrase-42").bearer(bearer))
        .await;
    assert_eq!(with_bearer.status, 200, "{}", with_bearer.raw);

    // And with a fresh cookie plus its CSRF token the cookie path works too.
    let login = app.login("nina", "Brand-New-Passphrase-42").await;
    let cookie = login.cookie_token().unwrap();
    let stale_csrf = app
        .send(
            Req::new("PUT", "/api/users/me")
                .json(json!({"current_password": "Brand-New-Passphrase-42", "new_password": "Third-Passphrase-77"}))
                .cookie(&cookie, Some(&csrf)),
        )
        .await;
    assert_eq!(
        stale_csrf.status, 403,
        "a CSRF token from before the password change is dead"
    );
    let csrf = app
        .send(Req::new("GET", "/api/csrf/token").cookie(&cookie, None))
        .await
        .body["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = app
        .send(
            Req::new("PUT", "/api/users/me")
                .json(json!({"current_password": "Brand-New-Passphrase-42", "new_password": "Third-Passphrase-77"}))
                .cookie(&cookie, Some(&csrf)),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
}

// ------------------------------------------------------------------ hostile input

#[tokio::test]
async fn sql_ish_and_oversized_inputs_are_refused_without_a_500() {
    let app = TestApp::spawn().await;
    app.insert_user("olga", Role::User, true).await;
    let token = app.token("olga", PASSWORD).await;
    let long = "a".repeat(10_000);
    let huge = format!(
        r#"{{"username":"{}","email":"a@b.co","password":"x"}}"#,
        "a".repeat(70_000)
    );

    let cases: Vec<(&str, Req, &[u16])> = vec![
        (
            "sql in username",
            Req::new("POST", "/api/register").json(
                json!({"username": "x' OR '1'='1'; DROP TABLE users; --", "email": "a@b.co", "password": "SecurePassword123!"}),
            ),
            &[422],
        ),
        (
            "sql in email",
            Req::new("POST", "/api/register")
                .json(json!({"username": "mallory", "email": "a@b.co' OR 1=1 --", "password": "SecurePassword123!"})),
            &[422],
        ),
        (
            "long username",
            Req::new("POST", "/api/register").json(json!({"username": long, "email": "a@b.co", "password": "SecurePassword123!"})),
            &[422],
        ),
        (
            "long password",
            Req::new("POST", "/api/register").json(json!({"username": "mallory", "email": "m@b.co", "password": long})),
            &[400],
        ),
        ("body over 64 KiB", Req::new("POST", "/api/register").raw("application/json", huge), &[413]),
        ("malformed json", Req::new("POST", "/api/register").raw("application/json", "{\"username\": "), &[400]),
        (
            "wrong types",
            Req::new("POST", "/api/register").json(json!({"username": 1, "email": [], "password": null})),
            &[422],
        ),
        ("nul byte", Req::new("POST", "/api/register").json(json!({"username": "ab\u{0}c", "email": "a@b.co", "password": "SecurePassword123!"})), &[422]),
        (
            "sql in login",
            Req::new("POST", "/api/token").raw("application/x-www-form-urlencoded", "username=admin'--&password=x' OR '1'='1"),
            &[401],
        ),
        (
            "long login",
            Req::new("POST", "/api/token").json(json!({"username": long, "password": long})),
            &[422],
        ),
        ("empty login", Req::new("POST", "/api/token").raw("application/x-www-form-urlencoded", ""), &[422]),
        ("xml login", Req::new("POST", "/api/token").raw("application/xml", "<x/>"), &[415]),
        (
            "unknown field in password change",
            Req::new("PUT", "/api/users/me")
                .bearer(&token)
                .json(json!({"current_password": PASSWORD, "new_password": "Brand-New-Passphrase-42", "role": "admin"})),
            &[422],
        ),
    ];
    for (name, req, expected) in cases {
        let r = app.send(req).await;
        assert!(
            expected.contains(&r.status),
            "{name}: got {} {}",
            r.status,
            r.raw
        );
        assert_error_shape(&r);
    }
    // The table is still there and nobody was promoted.
    assert_eq!(app.user("olga").await.unwrap().role, Role::User);
}

// ------------------------------------------------------------------ start-up

#[test]
fn production_start_without_its_database_secret_exits_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auth-api"))
        .env_clear()
        .env("ENVIRONMENT", "production")
        .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
        .output()
        .expect("run auth-api");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("DATABASE_SECRET_ARN is required"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn production_start_with_a_secret_value_in_the_environment_exits_naming_the_variable() {
    // Checked before any call to Secrets Manager (there is none to reach here).
    for (var, value) in [
        ("DATABASE_URL", "postgres://u:s3cr3t@127.0.0.1:1/none"),
        ("ADMIN_PASSWORD", "s3cr3t-Admin-Password"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_auth-api"))
            .env_clear()
            .env("ENVIRONMENT", "production")
            .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
            .env(
                "DATABASE_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:db",
            )
            .env(var, value)
            .output()
            .expect("run auth-api");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(&format!("{var} is invalid")), "{stderr}");
        assert!(!stderr.contains("s3cr3t"), "{stderr}");
    }
}

#[tokio::test]
async fn a_slow_database_check_does_not_hang_the_health_route() {
    let app = TestApp::spawn().await;
    let t = Instant::now();
    app.send(Req::new("GET", "/api/health")).await;
    assert!(t.elapsed() < Duration::from_secs(3));
}
