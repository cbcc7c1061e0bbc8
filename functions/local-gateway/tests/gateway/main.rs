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
fn production_start_with_a_password_in_database_url_exits_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_local-gateway"))
        .env_clear()
        .env("ENVIRONMENT", "production")
        .env("DATABASE_URL", "postgres://u:p@127.0.0.1:1/none")
        .output()
        .expect("run local-gateway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("DATABASE_URL is invalid: carries a password"),
        "{stderr}"
    );
}

/// `functions/openapi.yaml` as the repository holds it.
fn openapi_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap()
}

/// Keeps `functions/openapi.yaml` in step with the routes: every documented operation is
/// served (an anonymous call gets an answer other than 404/405).
#[tokio::test]
async fn every_route_in_the_openapi_document_is_served() {
    let gw = Gateway::spawn().await;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&openapi_text()).unwrap();
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
    assert_eq!(checked, 30, "operations in openapi.yaml");
}

fn ui() -> local_gateway::WebRoot {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    local_gateway::WebRoot::new(dir, "http://127.0.0.1:4566").unwrap()
}

#[tokio::test]
async fn the_ui_is_served_at_the_root_with_its_content_types_and_policy() {
    let gw = Gateway::spawn_with_web(Some(ui())).await;

    let page = gw.get("/", None).await;
    let script = gw.get("/js/app.js", None).await;
    let style = gw.get("/css/app.css", None).await;

    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.raw.contains("<main"));
    assert_eq!(script.status, 200);
    assert_eq!(
        script.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(style.headers["content-type"], "text/css; charset=utf-8");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(
        csp.contains("connect-src 'self' http://127.0.0.1:4566;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn the_ui_never_serves_paths_outside_its_files() {
    let gw = Gateway::spawn_with_web(Some(ui())).await;

    for path in [
        "/../Cargo.toml",
        "/js/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/.gitignore",
        "/package.json.bak",
        "/node_modules/playwright-core/package.json",
        "/tests/ui.test.mjs",
        "/js/",
        "/missing.html",
    ] {
        let r = gw.get(path, None).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.headers.contains_key("content-security-policy"), "{path}");
    }
    let post = gw.request("POST", "/index.html", &[], "").await;
    assert_eq!(post.status, 405);
}

#[tokio::test]
async fn api_paths_still_reach_the_functions_when_the_ui_is_served() {
    let gw = Gateway::spawn_with_web(Some(ui())).await;

    let health = gw.get("/api/health", None).await;
    let unknown = gw.get("/api/nothing-here", None).await;

    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");
    // The functions answer unknown API paths themselves, never the static files' plain 404.
    assert_eq!(unknown.status, 404, "{}", unknown.raw);
    assert_ne!(unknown.raw, "not found");
}

/// RFC 9110 §15.5.6: a 405 names the methods the route takes. For every path of the OpenAPI
/// document, an undeclared method gets 405 with `Allow` listing exactly the documented ones
/// (HEAD beside GET where the route answers it).
#[tokio::test]
async fn an_undeclared_method_gets_405_with_the_documented_methods_in_allow() {
    let gw = Gateway::spawn().await;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&openapi_text()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        let path = path
            .as_str()
            .unwrap()
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{action}", "approve");
        let mut documented: Vec<String> = item
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|m| m.as_str())
            .filter(|m| m != &"parameters")
            .map(str::to_uppercase)
            .collect();
        documented.sort();
        for method in ["TRACE", "PATCH"] {
            let r = gw.request(method, &path, &[], "").await;
            assert_eq!(r.status, 405, "{method} {path}: {}", r.raw);
            let allow = r
                .headers
                .get("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow"))
                .to_str()
                .unwrap();
            let mut listed: Vec<String> = allow
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| m != "HEAD" || !documented.contains(&"GET".to_string()))
                .collect();
            listed.sort();
            assert_eq!(listed, documented, "{path}: Allow {allow}");
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked}");
}

#[tokio::test]
async fn the_openapi_document_is_served_as_it_is_in_the_repository() {
    let gw = Gateway::spawn().await;
    let r = gw.get("/api/openapi.yaml", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/yaml");
    let doc = openapi_text();
    assert!(r.raw.ends_with(&doc), "the body is the document");
}
