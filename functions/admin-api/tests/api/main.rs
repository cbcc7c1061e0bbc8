//! admin-api (with auth-api beside it, as behind API Gateway) against the real Postgres.

#[path = "../../../auth-api/tests/api/helpers.rs"]
mod helpers;

use auth_api::State;
use db::users::Role;
use helpers::{Req, TestApp, TestResponse, PASSWORD};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;

/// Routes like API Gateway: admin paths to admin-api, the rest to auth-api.
fn gateway<'s>(
    state: &'s State,
    req: Request,
) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 's>> {
    if admin_api::owns_path(req.uri().path()) {
        Box::pin(admin_api::handle(state, req))
    } else {
        Box::pin(auth_api::handle(state, req))
    }
}

async fn send(app: &TestApp, req: Req<'_>) -> TestResponse {
    app.send_via(gateway, req).await
}

/// An app with an admin (password already changed) and its token.
async fn app_with_admin() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.insert_user("root-admin", Role::Admin, true).await;
    let token = app.token("root-admin", PASSWORD).await;
    (app, token)
}

fn ids_of(r: &TestResponse) -> Vec<String> {
    r.body
        .as_array()
        .unwrap_or_else(|| r.body["users"].as_array().expect("a list of users"))
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn v5_migration_guide_flow_step_by_step() {
    // First start: the brise-glace admin is created and its password printed once.
    let app = TestApp::spawn().await;
    let admin = db::upgrade(&app.db.pool, None)
        .await
        .unwrap()
        .expect("brise-glace admin");
    assert!(admin.banner().contains("ADMIN BRISE-GLACE ACCOUNT CREATED"));
    let first_password = admin.generated_password.clone().unwrap();

    // The admin logs in; the temporary password must be changed before anything else.
    let login = app.login("admin", &first_password).await;
    assert_eq!(login.status, 200, "{}", login.raw);
    assert_eq!(login.body["password_must_change"], true);
    let token = login.body["access_token"].as_str().unwrap().to_string();
    let early = send(&app, Req::new("GET", "/api/users").bearer(&token)).await;
    assert_eq!(
        (early.status, early.error_code()),
        (403, "password_change_required")
    );

    let changed = send(
        &app,
        Req::new("PUT", "/api/users/me")
            .bearer(&token)
            .json(json!({"current_password": first_password, "new_password": "MySecureAdminPassword123!"})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.raw);
    assert_eq!(changed.body["password_must_change"], false);
    let admin_token = app.token("admin", "MySecureAdminPassword123!").await;

    // A user registers and cannot log in yet.
    let reg = send(
        &app,
        Req::new("POST", "/api/register").json(json!({
            "username": "alice", "email": "alice@example.com", "password": "SecurePassword123!"
        })),
    )
    .await;
    assert_eq!(reg.status, 201);
    let alice_id = reg.body["id"].as_str().unwrap().to_string();
    let refused = app.login("alice", "SecurePassword123!").await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (403, "pending_approval")
    );

    // The admin finds her among the pending users and approves her.
    let pending = send(
        &app,
        Req::new("GET", "/api/users?status=pending").bearer(&admin_token),
    )
    .await;
    assert_eq!(pending.status, 200);
    assert_eq!(ids_of(&pending), vec!["alice"]);
    let approved = send(
        &app,
        Req::new("PUT", &format!("/api/admin/users/{alice_id}/approve")).bearer(&admin_token),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.raw);
    assert_eq!(approved.body["is_approved"], true);

    // She logs in and reads her profile.
    let alice = app.token("alice", "SecurePassword123!").await;
    let me = send(&app, Req::new("GET", "/api/users/me").bearer(&alice)).await;
    assert_eq!(
        (me.status, me.body["username"].as_str()),
        (200, Some("alice"))
    );

    // The admin lists users with filters, and with pagination.
    let users = send(
        &app,
        Req::new("GET", "/api/users?role=user&status=approved").bearer(&admin_token),
    )
    .await;
    assert_eq!(ids_of(&users), vec!["alice"]);
    let admins = send(
        &app,
        Req::new("GET", "/api/users?role=admin").bearer(&admin_token),
    )
    .await;
    assert_eq!(ids_of(&admins), vec!["admin"]);
    let page = send(
        &app,
        Req::new("GET", "/api/users?limit=1&offset=0").bearer(&admin_token),
    )
    .await;
    assert_eq!(page.body["total"], 2);
    assert_eq!(page.body["limit"], 1);
    assert_eq!(page.body["users"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_normal_user_gets_403_on_every_admin_route_and_nobody_gets_in_without_a_token() {
    let (app, _) = app_with_admin().await;
    let target = app.insert_user("target", Role::User, false).await;
    app.insert_user("plain", Role::User, true).await;
    let user = app.token("plain", PASSWORD).await;
    let id = target.id.to_string();
    let bulk = json!({"user_ids": [id]});
    let routes: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", "/api/users".into(), None),
        (
            "POST",
            "/api/admin/users".into(),
            Some(json!({"username": "x-new", "email": "x@new.co"})),
        ),
        ("PUT", format!("/api/admin/users/{id}/approve"), None),
        ("PUT", format!("/api/admin/users/{id}/block"), None),
        ("PUT", format!("/api/admin/users/{id}/unblock"), None),
        ("DELETE", format!("/api/admin/users/{id}"), None),
        (
            "POST",
            "/api/admin/users/bulk/approve".into(),
            Some(bulk.clone()),
        ),
        (
            "POST",
            "/api/admin/users/bulk/block".into(),
            Some(bulk.clone()),
        ),
        (
            "POST",
            "/api/admin/users/bulk/unblock".into(),
            Some(bulk.clone()),
        ),
        (
            "POST",
            format!("/api/admin/users/{id}/reset-password"),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in routes {
        fn with<'a>(r: Req<'a>, body: &Option<serde_json::Value>) -> Req<'a> {
            match body {
                Some(b) => r.json(b.clone()),
                None => r,
            }
        }
        let as_user = send(&app, with(Req::new(method, &path).bearer(&user), &body)).await;
        assert_eq!(as_user.status, 403, "{method} {path}: {}", as_user.raw);
        let anonymous = send(&app, with(Req::new(method, &path), &body)).await;
        assert_eq!(anonymous.status, 401, "{method} {path} without token");
    }
    // Nothing happened to the target.
    let t = app.user("target").await.unwrap();
    assert!(!t.is_approved && t.is_active);
}

#[tokio::test]
async fn blocking_revokes_tokens_at_once_and_unblocking_lets_the_user_back() {
    let (app, admin) = app_with_admin().await;
    let u = app.insert_user("bob", Role::User, true).await;
    let bob = app.token("bob", PASSWORD).await;

    let blocked = send(
        &app,
        Req::new("PUT", &format!("/api/admin/users/{}/block", u.id)).bearer(&admin),
    )
    .await;
    assert_eq!(
        (blocked.status, &blocked.body["is_active"]),
        (200, &json!(false))
    );
    assert_eq!(
        send(&app, Req::new("GET", "/api/users/me").bearer(&bob))
            .await
            .status,
        401
    );
    assert_eq!(app.login("bob", PASSWORD).await.status, 403);
    let again = send(
        &app,
        Req::new("PUT", &format!("/api/admin/users/{}/block", u.id)).bearer(&admin),
    )
    .await;
    assert_eq!(again.status, 409);

    let unblocked = send(
        &app,
        Req::new("PUT", &format!("/api/admin/users/{}/unblock", u.id)).bearer(&admin),
    )
    .await;
    assert_eq!(unblocked.status, 200);
    assert_eq!(app.login("bob", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn admins_cannot_block_or_delete_themselves_or_other_admins() {
    let (app, admin) = app_with_admin().await;
    let me = app.user("root-admin").await.unwrap();
    let other = app.insert_user("second-admin", Role::Admin, true).await;
    for path in [
        format!("/api/admin/users/{}/block", me.id),
        format!("/api/admin/users/{}/block", other.id),
    ] {
        assert_eq!(
            send(&app, Req::new("PUT", &path).bearer(&admin))
                .await
                .status,
            403,
            "{path}"
        );
    }
    for id in [me.id, other.id] {
        let r = send(
            &app,
            Req::new("DELETE", &format!("/api/admin/users/{id}")).bearer(&admin),
        )
        .await;
        assert_eq!(r.status, 403);
    }
    let reset = send(
        &app,
        Req::new(
            "POST",
            &format!("/api/admin/users/{}/reset-password", other.id),
        )
        .bearer(&admin),
    )
    .await;
    assert_eq!(reset.status, 403);
}

#[tokio::test]
async fn deleting_a_user_cascades_to_its_tasks_and_kills_its_token() {
    let (app, admin) = app_with_admin().await;
    let u = app.insert_user("carl", Role::User, true).await;
    let carl = app.token("carl", PASSWORD).await;
    let client = app.db.pool.get().await.unwrap();
    let task_id = uuid::Uuid::new_v4();
    db::tasks::insert_pending(
        &client,
        &db::tasks::NewTask {
            task_id,
            owner_id: Some(u.id),
            filename: "capture.pcap".into(),
            file_size_bytes: 1234,
            s3_key: format!("uploads/{}/{task_id}.pcap", u.id),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(24),
        },
    )
    .await
    .unwrap();

    let r = send(
        &app,
        Req::new("DELETE", &format!("/api/admin/users/{}", u.id)).bearer(&admin),
    )
    .await;

    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["tasks_deleted"], 1);
    assert_eq!(db::tasks::count_for_owner(&client, u.id).await.unwrap(), 0);
    assert_eq!(
        send(&app, Req::new("GET", "/api/users/me").bearer(&carl))
            .await
            .status,
        401
    );
    let gone = send(
        &app,
        Req::new("DELETE", &format!("/api/admin/users/{}", u.id)).bearer(&admin),
    )
    .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn admin_created_user_must_change_the_temporary_password_first() {
    let (app, admin) = app_with_admin().await;
    let r = send(
        &app,
        Req::new("POST", "/api/admin/users")
            .bearer(&admin)
            .json(json!({"username": "Dora", "email": "dora@example.com"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.body["user"]["is_approved"], true);
    assert_eq!(r.body["user"]["password_must_change"], true);
    let temporary = r.body["temporary_password"].as_str().unwrap().to_string();

    let login = app.login("dora", &temporary).await;
    assert_eq!(login.body["password_must_change"], true);
    let token = login.body["access_token"].as_str().unwrap().to_string();
    let change = send(
        &app,
        Req::new("PUT", "/api/users/me")
            .bearer(&token)
            .json(json!({"current_password": temporary, "new_password": "Doras-Own-Passphrase-8"})),
    )
    .await;
    assert_eq!(change.status, 200);
    assert_eq!(change.body["password_must_change"], false);
}

#[tokio::test]
async fn password_reset_revokes_tokens_and_issues_a_working_temporary_password() {
    let (app, admin) = app_with_admin().await;
    let u = app.insert_user("emil", Role::User, true).await;
    let old = app.token("emil", PASSWORD).await;

    let r = send(
        &app,
        Req::new("POST", &format!("/api/admin/users/{}/reset-password", u.id))
            .bearer(&admin)
            .json(json!({"send_email": false})),
    )
    .await;

    assert_eq!(r.status, 200, "{}", r.raw);
    let temporary = r.body["temporary_password"].as_str().unwrap();
    assert_eq!(
        send(&app, Req::new("GET", "/api/users/me").bearer(&old))
            .await
            .status,
        401
    );
    assert_eq!(app.login("emil", PASSWORD).await.status, 401);
    let login = app.login("emil", temporary).await;
    assert_eq!(
        (login.status, &login.body["password_must_change"]),
        (200, &json!(true))
    );
}

#[tokio::test]
async fn bulk_actions_report_each_id_and_are_capped_at_100() {
    let (app, admin) = app_with_admin().await;
    let a = app.insert_user("fay", Role::User, false).await;
    let b = app.insert_user("gus", Role::User, true).await;
    let unknown = uuid::Uuid::new_v4();

    let r = send(
        &app,
        Req::new("POST", "/api/admin/users/bulk/approve")
            .bearer(&admin)
            .json(json!({"user_ids": [a.id, b.id, unknown]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        (
            r.body["total"].as_u64(),
            r.body["success"].as_u64(),
            r.body["failed"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(r.body["results"][0]["status"], "success");
    assert_eq!(r.body["results"][1]["reason"], "user is already approved");
    assert_eq!(r.body["results"][2]["reason"], "user not found");

    let blocked = send(
        &app,
        Req::new("POST", "/api/admin/users/bulk/block")
            .bearer(&admin)
            .json(json!({"user_ids": [a.id, b.id]})),
    )
    .await;
    assert_eq!(blocked.body["success"], 2);

    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for body in [
        json!({"user_ids": too_many}),
        json!({"user_ids": []}),
        json!({"user_ids": [a.id, a.id]}),
    ] {
        let r = send(
            &app,
            Req::new("POST", "/api/admin/users/bulk/unblock")
                .bearer(&admin)
                .json(body),
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.raw);
    }
}

#[tokio::test]
async fn hostile_admin_inputs_are_refused_without_a_500() {
    let (app, admin) = app_with_admin().await;
    let cases = [
        Req::new("GET", "/api/users?status=approved'%20OR%201=1--"),
        Req::new("GET", "/api/users?role=superuser"),
        Req::new("GET", "/api/users?limit=abc"),
        Req::new("GET", "/api/users?limit=100000"),
        Req::new("GET", "/api/users?offset=-1"),
        Req::new("PUT", "/api/admin/users/1%20OR%201=1/approve"),
        Req::new("DELETE", "/api/admin/users/not-a-uuid"),
        Req::new("POST", "/api/admin/users")
            .json(json!({"username": "x'; DROP TABLE users;--", "email": "a@b.co"})),
        Req::new("POST", "/api/admin/users")
            .json(json!({"username": "valid-name", "email": "a@b.co", "role": "root"})),
        Req::new("POST", "/api/admin/users/bulk/approve")
            .json(json!({"user_ids": ["' OR 1=1 --"]})),
        Req::new("POST", "/api/admin/users/bulk/approve").raw("application/json", "[[[[["),
    ];
    for req in cases {
        let r = send(&app, req.bearer(&admin)).await;
        assert!(
            [400, 404, 422].contains(&r.status),
            "got {} {}",
            r.status,
            r.raw
        );
        assert!(r.body["error"].is_string());
    }
    let count = send(&app, Req::new("GET", "/api/users").bearer(&admin)).await;
    assert_eq!(ids_of(&count), vec!["root-admin"]);
}
