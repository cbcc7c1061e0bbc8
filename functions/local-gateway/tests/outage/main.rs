//! Health while Postgres is stopped: 503 "disconnected", then back to 200 when it returns.
//!
//! Its own test binary: it stops the project's local cluster, which cargo never does while
//! another test binary runs (binaries run one after another).

#[path = "../common/mod.rs"]
mod common;

use common::Gateway;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Stops the local cluster the way `localstack/down` does (as `postgres` when we are root).
fn stop_postgres() {
    let env = db::test_support::local_env();
    let pg_bin = env.get("PG_BIN").expect("PG_BIN in localstack/local.env");
    let pgdata = env.get("PGDATA").expect("PGDATA in localstack/local.env");
    let pg_ctl = format!("{pg_bin}/pg_ctl");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let status = if is_root {
        Command::new("runuser")
            .args([
                "-u", "postgres", "--", &pg_ctl, "-D", pgdata, "-m", "fast", "-w", "stop",
            ])
            .status()
    } else {
        Command::new(&pg_ctl)
            .args(["-D", pgdata, "-m", "fast", "-w", "stop"])
            .status()
    }
    .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl stop failed");
}

/// Brings everything back with the project's own idempotent script.
fn start_postgres() {
    let status = Command::new(repo_root().join("localstack/up"))
        .status()
        .expect("run localstack/up");
    assert!(status.success(), "localstack/up failed to restart Postgres");
}

/// Restarts Postgres even when an assertion fails, so later suites still have a database.
struct RestartOnDrop;
impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        start_postgres();
    }
}

#[tokio::test]
async fn health_is_503_while_postgres_is_down_and_recovers_when_it_returns() {
    let gw = Gateway::spawn().await;
    assert_eq!(gw.get("/api/health", None).await.status, 200);

    let guard = RestartOnDrop;
    stop_postgres();
    let t = Instant::now();
    let down = gw.get("/api/health", None).await;
    assert_eq!(down.status, 503, "{}", down.raw);
    assert_eq!(down.body["database"], "disconnected");
    assert_eq!(down.body["error"], "service_unavailable");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "health must answer quickly when the DB is down"
    );
    // Other routes say 503 too, in the usual error shape, never 500.
    let login = gw
        .request(
            "POST",
            "/api/token",
            &[("content-type", "application/json")],
            r#"{"username":"a","password":"b"}"#,
        )
        .await;
    assert_eq!(login.status, 503, "{}", login.raw);

    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = gw.get("/api/health", None).await;
        if r.status == 200 {
            assert_eq!(r.body["database"], "connected");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health did not recover: {}",
            r.raw
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
