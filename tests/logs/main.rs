//! A whole run at `LOG_LEVEL=debug` (the development stage's level) writes no secret: no
//! argon2 hash, no password, no token, no e-mail address. Its own test binary, because the
//! log subscriber is global to the process.

use e2e::{capture, Stack, PASSWORD};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_run_logs_no_hash_password_token_or_email() {
    let logs = Logs::default();
    let writer = logs.clone();
    common::telemetry::init_with_writer("debug", common::settings::LogFormat::Json, move || {
        writer.clone()
    });

    let stack = Stack::start(e2e::Options::default()).await;
    let alice = stack.user("alice").await;
    let task = stack
        .upload(&alice, "espn.pcapng", capture("cs_http_espn.pcapng"))
        .await;
    stack.wait_done(&alice, &task).await;
    let new_password = "Another-Horse-Battery-77-Staple";
    let changed = stack
        .call(
            "PUT",
            "/api/users/me",
            &alice,
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text());
    let fresh = changed.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let wrong = e2e::http(
        "POST",
        &stack.url("/api/token"),
        &[("content-type", "application/json")],
        serde_json::to_vec(&json!({"username": "alice", "password": "not-her-password"}))
            .expect("json"),
    )
    .await;
    assert_eq!(wrong.status, 401);

    let text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(
        text.lines().filter(|l| l.contains("\"DEBUG\"")).count() > 10,
        "the run logged at debug"
    );
    for (what, secret) in [
        ("an argon2 hash", "$argon2"),
        ("the password", PASSWORD),
        ("the new password", new_password),
        ("a wrong password", "not-her-password"),
        ("a token", alice.as_str()),
        ("the new token", fresh.as_str()),
        ("an e-mail address", "alice@example.com"),
    ] {
        let line = text.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "the logs hold {what}: {line:?}");
    }
}
