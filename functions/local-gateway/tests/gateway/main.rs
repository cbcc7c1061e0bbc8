//! `local-gateway` over real HTTP on loopback: routing to both functions, headers, limits, start-up.

#[path = "../common/mod.rs"]
mod common;

use common::Gateway;

#[tokio::test]
async fn health_is_served_over_http_with_the_security_headers() {
    let gw = Gateway::spawn().await;
    let r = gw.get("/api/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["database"], "connected");
    for h in [
        "content-security-policy",
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
    ] {
        assert!(r.headers.contains_key(h), "{h}");
    }
}

#[tokio::test]
async fn auth_and_admin_routes_are_both_reachable_on_one_port() {
    let gw = Gateway::spawn().await;
    let admin = db::upgrade(&gw.db.pool, Some("Gateway-Admin-Passphrase-1"))
        .await
        .unwrap()
        .expect("admin created");
    assert!(admin.generated_password.is_none());

    let login = gw
        .request(
            "POST",
            "/api/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            "username=admin&password=Gateway-Admin-Passphrase-1",
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.raw);
    let token = login.body["access_token"].as_str().unwrap();

    let users = gw.get("/api/users", Some(token)).await;
    let me = gw.get("/api/users/me", Some(token)).await;
    let missing = gw.get("/api/nowhere", Some(token)).await;

    assert_eq!(users.status, 200, "{}", users.raw);
    assert_eq!(users.body[0]["username"], "admin");
    assert_eq!(me.body["role"], "admin");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"], "not_found");
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_before_any_handler() {
    let gw = Gateway::spawn().await;
    let body = "x".repeat(200 * 1024);
    let r = gw
        .request(
            "POST",
            "/api/register",
            &[("content-type", "application/json")],
            &body,
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["error"], "payload_too_large");
}

#[tokio::test]
async fn login_failures_are_counted_per_client_address() {
    let gw = Gateway::spawn().await;
    for _ in 0..20 {
        let r = gw
            .request(
                "POST",
                "/api/token",
                &[("content-type", "application/json")],
                &format!(
                    r#"{{"username":"u{}","password":"Wrong-Password-1"}}"#,
                    uuid::Uuid::new_v4().simple()
                ),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    // 20 failures from 127.0.0.1 on 20 different accounts: the address is now throttled too.
    let r = gw
        .request(
            "POST",
            "/api/token",
            &[("content-type", "application/json")],
            r#"{"username":"fresh","password":"Wrong-Password-1"}"#,
        )
        .await;
    assert_eq!(r.status, 429);
    assert!(r.headers.contains_key("retry-after"));
}

#[test]
fn production_start_without_secret_key_exits_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_local-gateway"))
        .env_clear()
        .env("ENVIRONMENT", "production")
        .env("DATABASE_URL", "postgres://u:p@127.0.0.1:1/none")
        .env(
            "CSRF_SECRET_KEY",
            "fedcba9876543210fedcba9876543210fedcba98",
        )
        .output()
        .expect("run local-gateway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("SECRET_KEY is required"), "{stderr}");
}

/// Keeps `functions/openapi.yaml` in step with the routes: every documented operation is
/// served (an anonymous call gets an answer other than 404/405).
#[tokio::test]
async fn every_route_in_the_openapi_document_is_served() {
    let gw = Gateway::spawn().await;
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(doc_path).unwrap()).unwrap();
    let paths = doc["paths"].as_mapping().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        let path = path
            .as_str()
            .unwrap()
            .replace("{id}", &uuid::Uuid::new_v4().to_string());
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_uppercase();
            let r = gw
                .request(
                    &method,
                    &path,
                    &[("content-type", "application/json")],
                    "{}",
                )
                .await;
            assert!(
                ![404, 405].contains(&r.status),
                "{method} {path} is documented but not served: {}",
                r.raw
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 26, "operations in openapi.yaml");
}
