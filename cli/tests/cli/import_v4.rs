//! `pcap_analyzer db import-v4` against the real Postgres: a v5-shaped SQLite database is
//! imported into a fresh database (real migrations), every row is checked, a second run imports
//! nothing, and bad input changes nothing.

use db::test_support::{fresh_database, TestDatabase};
use rusqlite::Connection;
use std::path::PathBuf;
use std::process::{Command, Output};
use uuid::Uuid;

/// Python bcrypt 5.0, cost 12, of "Legacy-V5-Password-42" (what v5 stored).
const V5_HASH: &str = "$2b$12$8F5x0Ktikz56eqxr4hLlYuGgNS6zSVOJWT91iZ2i0kcyi8Bw3FTJe";

const ALICE: &str = "6f1b6c1e-3f52-4a0e-9a57-0d8a1e3c0a01";
const BOB: &str = "6f1b6c1e-3f52-4a0e-9a57-0d8a1e3c0a02";
const CAROL: &str = "6f1b6c1e-3f52-4a0e-9a57-0d8a1e3c0a03";
const LEGACY_ADMIN: &str = "6f1b6c1e-3f52-4a0e-9a57-0d8a1e3c0a04";
const T_ALICE_DONE: &str = "0c7d2a30-1111-4b5e-8f00-000000000001";
const T_NO_OWNER: &str = "0c7d2a30-1111-4b5e-8f00-000000000002";
const T_BOB_FAILED: &str = "0c7d2a30-1111-4b5e-8f00-000000000003";
const T_ALICE_RUNNING: &str = "0c7d2a30-1111-4b5e-8f00-000000000004";
const T_ADMIN: &str = "0c7d2a30-1111-4b5e-8f00-000000000005";
const T_MISSING: &str = "0c7d2a30-1111-4b5e-8f00-0000000000ff";

/// v5's SQLite DDL (v5-inventory §5: TEXT/INTEGER/REAL/BOOLEAN, times as Python writes them).
const V5_SCHEMA: &str = "
CREATE TABLE users (
    id TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, email TEXT UNIQUE NOT NULL,
    hashed_password TEXT NOT NULL, role TEXT DEFAULT 'user', is_active BOOLEAN DEFAULT 1,
    is_approved BOOLEAN DEFAULT 0, approved_by TEXT, approved_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL, last_login TIMESTAMP, password_must_change BOOLEAN DEFAULT 0,
    is_2fa_enabled BOOLEAN DEFAULT 0, totp_secret TEXT, backup_codes TEXT);
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY, filename TEXT NOT NULL, status TEXT NOT NULL,
    uploaded_at TIMESTAMP, analyzed_at TIMESTAMP, file_size_bytes INTEGER, total_packets INTEGER,
    health_score REAL, report_html_path TEXT, report_json_path TEXT, error_message TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, last_heartbeat TIMESTAMP,
    progress_percent INTEGER DEFAULT 0, current_phase TEXT, owner_id TEXT);
CREATE TABLE progress_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, phase TEXT NOT NULL,
    progress_percent INTEGER NOT NULL, packets_processed INTEGER, total_packets INTEGER,
    current_analyzer TEXT, message TEXT, timestamp TIMESTAMP NOT NULL);
";

/// id, owner, filename, status, health score, error message.
type TaskFixture<'a> = (
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a str,
    Option<f64>,
    Option<&'a str>,
);
/// id, username, email, hash, role, is_active, is_approved, approved_by.
type UserRow = (
    Uuid,
    String,
    String,
    String,
    String,
    bool,
    bool,
    Option<Uuid>,
);
/// id, owner, filename, status, size, packets, score, error, report key.
type TaskRow = (
    Uuid,
    Option<Uuid>,
    String,
    String,
    i64,
    Option<i64>,
    Option<f64>,
    Option<String>,
    Option<String>,
);

/// A file in a directory of its own, removed with the directory when dropped.
struct TempFile(PathBuf);

impl std::ops::Deref for TempFile {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempFile {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn temp_file(name: &str) -> TempFile {
    let dir = std::env::temp_dir().join(format!("pcap-analyzer-import-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempFile(dir.join(name))
}

/// A v5 database: approved and pending users (one admin named like the brise-glace account),
/// tasks with and without owner, one still running, snapshots, and one snapshot of no task.
fn v5_database() -> TempFile {
    let path = temp_file("pcap_analyzer.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(V5_SCHEMA).unwrap();
    let users = [
        (
            ALICE,
            "alice",
            "alice@example.com",
            "user",
            1,
            1,
            Some(CAROL),
            Some("2024-01-02 09:00:00"),
            Some("2024-03-01 08:00:00.500000"),
        ),
        (
            BOB,
            "bob",
            "bob@example.com",
            "user",
            1,
            0,
            None,
            None,
            None,
        ),
        (
            CAROL,
            "carol",
            "carol@example.com",
            "admin",
            1,
            1,
            None,
            Some("2024-01-01 00:00:00"),
            None,
        ),
        (
            LEGACY_ADMIN,
            "admin",
            "omegabk@gmail.com",
            "admin",
            1,
            1,
            None,
            None,
            None,
        ),
    ];
    for (id, name, email, role, active, approved, by, at, last) in users {
        c.execute(
            "INSERT INTO users (id, username, email, hashed_password, role, is_active, is_approved, \
             approved_by, approved_at, created_at, last_login) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,'2024-01-01 12:00:00',?10)",
            rusqlite::params![id, name, email, V5_HASH, role, active, approved, by, at, last],
        )
        .unwrap();
    }
    let tasks: [TaskFixture; 5] = [
        (
            T_ALICE_DONE,
            Some(ALICE),
            "office.pcap",
            "completed",
            Some(87.5),
            None,
        ),
        (
            T_NO_OWNER,
            None,
            "v4-legacy.pcapng",
            "completed",
            Some(42.0),
            None,
        ),
        (
            T_BOB_FAILED,
            Some(BOB),
            "broken.pcap",
            "failed",
            None,
            Some("not a capture"),
        ),
        (
            T_ALICE_RUNNING,
            Some(ALICE),
            "big.pcap",
            "processing",
            None,
            None,
        ),
        (
            T_ADMIN,
            Some(LEGACY_ADMIN),
            "admin.pcap",
            "completed",
            Some(100.0),
            None,
        ),
    ];
    for (id, owner, file, status, score, err) in tasks {
        c.execute(
            "INSERT INTO tasks (task_id, filename, status, uploaded_at, analyzed_at, file_size_bytes, \
             total_packets, health_score, report_html_path, error_message, created_at, progress_percent, owner_id) \
             VALUES (?1,?2,?3,'2024-02-03 10:00:00','2024-02-03T10:00:05+00:00',123456,789,?4,'/data/reports/x.html',?5,'2024-02-03 10:00:00',100,?6)",
            rusqlite::params![id, file, status, score, err, owner],
        )
        .unwrap();
    }
    let snapshots = [
        (T_ALICE_DONE, "parsing", 10),
        (T_ALICE_DONE, "analyzing", 60),
        (T_ALICE_DONE, "completed", 100),
        (T_ALICE_RUNNING, "parsing", 30),
        (T_MISSING, "parsing", 5),
    ];
    for (task, phase, pct) in snapshots {
        c.execute(
            "INSERT INTO progress_snapshots (task_id, phase, progress_percent, packets_processed, \
             total_packets, current_analyzer, message, timestamp) \
             VALUES (?1,?2,?3,100,789,'tcp','working','2024-02-03 10:00:01.250000')",
            rusqlite::params![task, phase, pct],
        )
        .unwrap();
    }
    path
}

fn import(db: &TestDatabase, sqlite: &std::path::Path, extra: &[&str]) -> Output {
    let url = format!("sqlite:///{}", sqlite.display());
    Command::new(env!("CARGO_BIN_EXE_pcap_analyzer"))
        .args([
            "db",
            "import-v4",
            "--sqlite-url",
            &url,
            "--postgres-url",
            &db.url,
        ])
        .args(extra)
        .env("DATABASE_SSL_MODE", "disable")
        .env_remove("ENVIRONMENT")
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn count(db: &TestDatabase, table: &str) -> i64 {
    let c = db.pool.get().await.unwrap();
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn id(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

#[tokio::test]
async fn v5_database_is_imported_row_for_row_and_a_second_run_imports_nothing() {
    // Arrange: the platform's first start already made the brise-glace `admin`.
    let db = fresh_database().await;
    let admin = db::upgrade(&db.pool, Some("Brise-Glace-Admin-2024"))
        .await
        .unwrap()
        .expect("admin created");
    assert_eq!(admin.username, "admin");
    let sqlite = v5_database();

    // Act
    let first = import(&db, &sqlite, &[]);

    // Assert: counts printed
    let out = text(&first);
    assert!(first.status.success(), "{out}");
    assert!(
        out.contains("4 users, 5 tasks, 5 progress snapshots"),
        "{out}"
    );
    assert!(
        out.contains("users:     3 imported, 1 already present (1 matched"),
        "{out}"
    );
    assert!(
        out.contains(
            "tasks:     5 imported, 0 already present (1 without owner: admins only; 1 unfinished"
        ),
        "{out}"
    );
    assert!(
        out.contains("snapshots: 4 imported, 0 already present"),
        "{out}"
    );
    assert!(
        out.contains("1 skipped: their task is not in the SQLite database"),
        "{out}"
    );
    assert!(out.contains("verified"), "{out}");

    // Assert: every user row
    let c = db.pool.get().await.unwrap();
    let rows = c
        .query(
            "SELECT id, username, email, hashed_password, role, is_active, is_approved, approved_by, \
                 approved_at, created_at, last_login FROM users ORDER BY username",
            &[],
        )
        .await
        .unwrap();
    let users: Vec<UserRow> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        })
        .collect();
    assert_eq!(users.len(), 4, "{users:?}");
    let by_name = |n: &str| users.iter().find(|u| u.1 == n).unwrap().clone();
    let alice = by_name("alice");
    assert_eq!(
        alice,
        (
            id(ALICE),
            "alice".into(),
            "alice@example.com".into(),
            V5_HASH.into(),
            "user".into(),
            true,
            true,
            Some(id(CAROL))
        )
    );
    let bob = by_name("bob");
    assert_eq!(
        (bob.0, bob.6, bob.7),
        (id(BOB), false, None),
        "bob stays pending approval"
    );
    let carol = by_name("carol");
    assert_eq!(
        (carol.0, carol.4.as_str(), carol.6),
        (id(CAROL), "admin", true)
    );
    let platform_admin = by_name("admin");
    assert_ne!(
        platform_admin.0,
        id(LEGACY_ADMIN),
        "the existing admin is kept, not duplicated"
    );
    assert!(
        platform_admin.3.starts_with("$argon2id$"),
        "the existing admin's password is kept"
    );
    let times: (
        Option<time::OffsetDateTime>,
        time::OffsetDateTime,
        Option<time::OffsetDateTime>,
    ) = {
        let r = rows
            .iter()
            .find(|r| r.get::<_, String>(1) == "alice")
            .unwrap();
        (r.get(8), r.get(9), r.get(10))
    };
    assert_eq!(times.0.unwrap().unix_timestamp(), 1_704_186_000); // 2024-01-02 09:00:00 UTC
    assert_eq!(times.1.unix_timestamp(), 1_704_110_400); // 2024-01-01 12:00:00 UTC
    assert_eq!(times.2.unwrap().unix_timestamp(), 1_709_280_000); // 2024-03-01 08:00:00.5
    assert_eq!(times.2.unwrap().millisecond(), 500);

    // Assert: every task row
    let rows = c
        .query(
            "SELECT task_id, owner_id, filename, status, file_size_bytes, total_packets, health_score, \
                 error_message, report_html_key, uploaded_at FROM tasks ORDER BY task_id",
            &[],
        )
        .await
        .unwrap();
    let tasks: Vec<TaskRow> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
                r.get(8),
            )
        })
        .collect();
    assert_eq!(tasks.len(), 5);
    let task = |t: &str| tasks.iter().find(|x| x.0 == id(t)).unwrap().clone();
    assert_eq!(
        task(T_ALICE_DONE),
        (
            id(T_ALICE_DONE),
            Some(id(ALICE)),
            "office.pcap".into(),
            "completed".into(),
            123_456,
            Some(789),
            Some(87.5),
            None,
            None
        )
    );
    assert_eq!(
        task(T_NO_OWNER).1,
        None,
        "a v4 task without owner stays admin-only"
    );
    assert_eq!(task(T_BOB_FAILED).1, Some(id(BOB)));
    assert_eq!(task(T_BOB_FAILED).7.as_deref(), Some("not a capture"));
    let running = task(T_ALICE_RUNNING);
    assert_eq!(running.3, "failed", "no analyzer will resume a v5 job");
    assert!(running.7.unwrap().contains("interrupted"));
    assert_eq!(
        task(T_ADMIN).1,
        Some(platform_admin.0),
        "the legacy admin's task follows the account"
    );
    let uploaded: time::OffsetDateTime = rows[0].get(9);
    assert_eq!(uploaded.unix_timestamp(), 1_706_954_400); // 2024-02-03 10:00:00 UTC

    // Assert: snapshots
    let snaps = c
        .query(
            "SELECT task_id, phase, progress_percent, packets_processed, total_packets, current_analyzer, message \
             FROM progress_snapshots ORDER BY task_id, progress_percent",
            &[],
        )
        .await
        .unwrap();
    let snaps: Vec<(Uuid, String, i32)> = snaps
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        snaps,
        vec![
            (id(T_ALICE_DONE), "parsing".into(), 10),
            (id(T_ALICE_DONE), "analyzing".into(), 60),
            (id(T_ALICE_DONE), "completed".into(), 100),
            (id(T_ALICE_RUNNING), "parsing".into(), 30),
        ]
    );

    // Act again: idempotent
    let second = import(&db, &sqlite, &[]);
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    assert!(
        out.contains("users:     0 imported, 4 already present"),
        "{out}"
    );
    assert!(
        out.contains("tasks:     0 imported, 5 already present"),
        "{out}"
    );
    assert!(
        out.contains("snapshots: 0 imported, 4 already present"),
        "{out}"
    );
    assert_eq!(count(&db, "users").await, 4);
    assert_eq!(count(&db, "tasks").await, 5);
    assert_eq!(count(&db, "progress_snapshots").await, 4);
}

#[tokio::test]
async fn dry_run_prints_the_counts_and_writes_nothing() {
    let db = fresh_database().await;
    let sqlite = v5_database();

    let run = import(&db, &sqlite, &["--dry-run"]);

    let out = text(&run);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("users:     4 would import"), "{out}");
    assert!(out.contains("tasks:     5 would import"), "{out}");
    assert!(out.contains("rolled back; nothing was written"), "{out}");
    assert_eq!(count(&db, "users").await, 0);
    assert_eq!(count(&db, "tasks").await, 0);
    assert_eq!(count(&db, "progress_snapshots").await, 0);
}

#[tokio::test]
async fn malformed_sqlite_file_is_a_clear_error_and_changes_nothing() {
    let db = fresh_database().await;
    let garbage = temp_file("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not an SQLite database, just some bytes\n".repeat(200),
    )
    .unwrap();
    let missing = temp_file("missing.db");

    let bad = import(&db, &garbage, &[]);
    let absent = import(&db, &missing, &[]);

    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("is not a readable SQLite database"),
        "{}",
        text(&bad)
    );
    assert_eq!(absent.status.code(), Some(1));
    assert!(
        text(&absent).contains("does not exist"),
        "{}",
        text(&absent)
    );
    assert_eq!(count(&db, "users").await, 0);
    assert_eq!(count(&db, "tasks").await, 0);
}

#[tokio::test]
async fn bad_value_or_conflict_midway_rolls_back_the_whole_import() {
    let db = fresh_database().await;
    // A value of the wrong kind: refused while reading, with the row and column named.
    let bad_uuid = v5_database();
    Connection::open(&bad_uuid)
        .unwrap()
        .execute(
            "UPDATE tasks SET owner_id = 'not-a-uuid' WHERE task_id = ?1",
            [T_BOB_FAILED],
        )
        .unwrap();
    // A conflict Postgres finds after rows were written: an account with alice's address exists.
    let client = db.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO users (id, username, email, hashed_password) VALUES ($1, 'someone', 'carol@example.com', 'x')",
            &[&Uuid::new_v4()],
        )
        .await
        .unwrap();

    let read_error = import(&db, &bad_uuid, &[]);
    let conflict = import(&db, &v5_database(), &[]);

    let out = text(&read_error);
    assert_eq!(read_error.status.code(), Some(1), "{out}");
    assert!(
        out.contains("tasks row 3: column owner_id: expected a UUID"),
        "{out}"
    );
    let out = text(&conflict);
    assert_eq!(conflict.status.code(), Some(1), "{out}");
    assert!(out.contains("user carol") && out.contains("email"), "{out}");
    assert!(out.contains("nothing was written"), "{out}");
    assert_eq!(
        count(&db, "users").await,
        1,
        "alice and bob, inserted before carol, were rolled back"
    );
    assert_eq!(count(&db, "tasks").await, 0);
}
