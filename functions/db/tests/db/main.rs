//! Migrations, brise-glace admin and repositories against the real Postgres.

use db::rate_limits::{self, Attempt};
use db::tasks;
use db::test_support::{app_role, fresh_database, fresh_database_unmigrated};
use db::users::{self, NewUser, Role};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        hashed_password: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA".into(),
        role: Role::User,
        is_approved: false,
        approved_by: None,
        password_must_change: false,
    }
}

#[tokio::test]
async fn upgrade_on_an_empty_database_creates_the_brise_glace_admin_once() {
    let db = fresh_database_unmigrated().await;

    let first = db::upgrade(&db.pool, None).await.expect("upgrade");
    let second = db::upgrade(&db.pool, None).await.expect("second upgrade");

    let admin = first.expect("admin created on first start");
    let password = admin
        .generated_password
        .clone()
        .expect("generated password");
    assert_eq!(admin.username, "admin");
    assert_eq!(password.chars().count(), 24);
    assert!(admin
        .banner()
        .starts_with("ADMIN BRISE-GLACE ACCOUNT CREATED"));
    assert!(admin.banner().contains(&password));
    assert!(second.is_none(), "an admin exists, nothing is created");

    let client = db.pool.get().await.unwrap();
    let stored = users::find_by_username(&client, "admin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.role, Role::Admin);
    assert!(stored.is_approved && stored.is_active && stored.password_must_change);
    assert!(
        security::password::verify_password(&stored.hashed_password, &password)
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn upgrade_uses_admin_password_and_does_not_print_it() {
    let db = fresh_database_unmigrated().await;
    let chosen = "Operator-Chosen-Secret-42";

    let admin = db::upgrade(&db.pool, Some(chosen)).await.unwrap().unwrap();

    assert!(admin.generated_password.is_none());
    assert!(!admin.banner().contains(chosen));
    let client = db.pool.get().await.unwrap();
    let stored = users::find_by_username(&client, "admin")
        .await
        .unwrap()
        .unwrap();
    assert!(
        security::password::verify_password(&stored.hashed_password, chosen)
            .unwrap()
            .is_some()
    );
    assert!(!stored.password_must_change);
}

#[tokio::test]
async fn upgrade_refuses_a_weak_admin_password_naming_the_variable() {
    let db = fresh_database_unmigrated().await;
    let err = db::upgrade(&db.pool, Some("short")).await.unwrap_err();
    assert!(err.to_string().contains("ADMIN_PASSWORD"), "{err}");
}

#[tokio::test]
async fn concurrent_upgrades_create_exactly_one_admin() {
    let db = fresh_database_unmigrated().await;
    let (a, b) = tokio::join!(db::upgrade(&db.pool, None), db::upgrade(&db.pool, None));
    let created = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|x| x.is_some())
        .count();
    assert_eq!(created, 1);
}

/// SQLSTATE 42501: the statement was refused for want of a privilege.
fn is_permission_denied(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
}

#[tokio::test]
async fn the_application_role_changes_rows_but_never_the_schema() {
    let db = fresh_database().await;
    let app = db
        .app_pool
        .get()
        .await
        .expect("connect as the application role");

    // Rows: insert (with its password_history row, numbered by a sequence), read, update, delete.
    let user = users::insert(&app, &new_user("rita"))
        .await
        .expect("INSERT");
    app.execute(
        "UPDATE users SET email = 'r@example.com' WHERE id = $1",
        &[&user.id],
    )
    .await
    .expect("UPDATE");
    let n: i64 = app
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("SELECT")
        .get(0);
    assert_eq!(n, 1);
    app.execute("DELETE FROM users WHERE id = $1", &[&user.id])
        .await
        .expect("DELETE");

    // The schema: every statement is refused for want of the privilege.
    for ddl in [
        "CREATE TABLE intruder (id int)",
        "DROP TABLE users",
        "ALTER TABLE users ADD COLUMN intruder int",
        "TRUNCATE users",
        "TRUNCATE tasks CASCADE",
        "DELETE FROM refinery_schema_history",
    ] {
        let err = app.batch_execute(ddl).await.expect_err(ddl);
        assert!(is_permission_denied(&err), "{ddl}: {err:?}");
    }
    let tables: i64 = db
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'users'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
}

#[tokio::test]
async fn upgrade_as_owner_grants_the_application_role_tables_created_later() {
    let db = fresh_database_unmigrated().await;
    db::upgrade_as_owner(&db.pool, None, Some(&app_role()))
        .await
        .expect("upgrade as owner");
    // A later migration's table, created by the owner: default privileges cover it.
    db.pool
        .get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE later_table (id bigserial PRIMARY KEY, note text)")
        .await
        .unwrap();

    let app = db
        .app_pool
        .get()
        .await
        .expect("connect as the application role");
    app.batch_execute("INSERT INTO later_table (note) VALUES ('x'); DELETE FROM later_table")
        .await
        .expect("DML on a table created after the grants");
    let err = app
        .batch_execute("DROP TABLE later_table")
        .await
        .expect_err("DROP");
    assert!(is_permission_denied(&err), "{err:?}");
}

#[tokio::test]
async fn task_status_outside_the_known_states_is_rejected_by_the_schema() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    let err = client
        .execute(
            "INSERT INTO tasks (task_id, filename, file_size_bytes, status, expires_at) VALUES ($1, 'a.pcap', 1, 'bogus', now())",
            &[&Uuid::new_v4()],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().code(),
        &tokio_postgres::error::SqlState::CHECK_VIOLATION
    );
}

#[tokio::test]
async fn deleting_a_user_cascades_to_tasks_and_progress() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    let user = users::insert(&client, &new_user("carol")).await.unwrap();
    let task_id = Uuid::new_v4();
    tasks::insert_pending(
        &client,
        &tasks::NewTask {
            task_id,
            owner_id: Some(user.id),
            filename: "a.pcap".into(),
            file_size_bytes: 100,
            s3_key: format!("uploads/{}/{task_id}.pcap", user.id),
            expires_at: OffsetDateTime::now_utc() + Duration::hours(24),
        },
    )
    .await
    .unwrap();
    client
        .execute(
            "INSERT INTO progress_snapshots (task_id, phase, progress_percent) VALUES ($1, 'reading', 5)",
            &[&task_id],
        )
        .await
        .unwrap();

    let (deleted, tasks_deleted) = users::delete(&client, user.id).await.unwrap().unwrap();

    assert_eq!((deleted.id, tasks_deleted), (user.id, 1));
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM progress_snapshots)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn duplicate_username_or_email_is_reported_by_field() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    users::insert(&client, &new_user("dave")).await.unwrap();

    let mut same_name = new_user("dave");
    same_name.email = "other@example.com".into();
    let mut same_email = new_user("erin");
    same_email.email = "DAVE@example.com".into();

    assert!(
        matches!(users::insert(&client, &same_name).await, Err(db::DbError::Duplicate(f)) if f == "username")
    );
    assert!(
        matches!(users::insert(&client, &same_email).await, Err(db::DbError::Duplicate(f)) if f == "email")
    );
}

#[tokio::test]
async fn password_change_bumps_token_version_and_keeps_five_history_entries() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    let user = users::insert(&client, &new_user("frank")).await.unwrap();

    for i in 0..7 {
        users::change_password(&client, user.id, &format!("hash-{i}"), false)
            .await
            .unwrap();
    }

    let after = users::find_by_id(&client, user.id).await.unwrap().unwrap();
    assert_eq!(after.token_version, user.token_version + 7);
    let history = users::recent_password_hashes(&client, user.id)
        .await
        .unwrap();
    assert_eq!(
        history,
        vec!["hash-6", "hash-5", "hash-4", "hash-3", "hash-2"]
    );
}

#[tokio::test]
async fn rate_limit_admits_up_to_the_maximum_then_blocks_and_reports_the_wait() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    let bucket = rate_limits::LOGIN_ACCOUNT_ADDRESS;
    for n in 1..=5 {
        assert_eq!(
            rate_limits::attempt(&client, bucket, "gina", 900, 5)
                .await
                .unwrap(),
            Attempt::Admitted { hits: n }
        );
    }
    let wait = rate_limits::attempt(&client, bucket, "gina", 900, 5)
        .await
        .unwrap()
        .retry_after();
    assert!(
        matches!(wait, Some(s) if (890..=900).contains(&s)),
        "{wait:?}"
    );
    // A refused attempt is not counted; a refund gives one back.
    rate_limits::refund(&client, bucket, "gina").await.unwrap();
    assert_eq!(
        rate_limits::attempt(&client, bucket, "gina", 900, 5)
            .await
            .unwrap(),
        Attempt::Admitted { hits: 5 }
    );
    rate_limits::clear(&client, bucket, "gina").await.unwrap();
    assert_eq!(
        rate_limits::count(&client, bucket, "gina", 900)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn parallel_attempts_are_admitted_no_more_than_the_maximum() {
    let db = fresh_database().await;
    let attempts = (0..40).map(|_| {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let client = pool.get().await.unwrap();
            rate_limits::attempt(&client, rate_limits::LOGIN_IP, "10.9.9.9", 900, 5)
                .await
                .unwrap()
        })
    });
    let mut admitted = 0;
    for a in attempts.collect::<Vec<_>>() {
        if a.await.unwrap().retry_after().is_none() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
}

#[tokio::test]
async fn an_elapsed_window_starts_counting_again() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    for _ in 0..5 {
        rate_limits::attempt(&client, rate_limits::LOGIN_IP, "10.0.0.1", 1, 5)
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        rate_limits::attempt(&client, rate_limits::LOGIN_IP, "10.0.0.1", 1, 5)
            .await
            .unwrap(),
        Attempt::Admitted { hits: 1 }
    );
}

/// A pending task of `owner`; returns its upload key.
async fn pending_task(client: &impl db::GenericClient, owner: Uuid) -> String {
    let task_id = Uuid::new_v4();
    let key = format!("uploads/{owner}/{task_id}");
    tasks::insert_pending(
        client,
        &tasks::NewTask {
            task_id,
            owner_id: Some(owner),
            filename: "a.pcap".into(),
            file_size_bytes: 100,
            s3_key: key.clone(),
            expires_at: OffsetDateTime::now_utc() + Duration::hours(24),
        },
    )
    .await
    .unwrap();
    key
}

/// Claims `key` for analysis, two analyses per owner at most.
async fn claim(client: &mut db::Client, key: &str) -> tasks::Claimed {
    let stale = std::time::Duration::from_secs(120);
    tasks::claim_fairly(client, key, None, stale, 2)
        .await
        .unwrap()
}

#[tokio::test]
async fn one_owner_gets_two_analyses_at_once_and_the_others_go_first() {
    let db = fresh_database().await;
    let mut client = db.pool.get().await.unwrap();
    let alice = users::insert(&client, &new_user("alice")).await.unwrap();
    let bob = users::insert(&client, &new_user("bob")).await.unwrap();
    let mut alices = Vec::new();
    for _ in 0..3 {
        alices.push(pending_task(&client, alice.id).await);
    }
    let bobs = pending_task(&client, bob.id).await;
    let first = claim(&mut client, &alices[0]).await;
    assert!(matches!(first, tasks::Claimed::Task(_)), "{first:?}");
    assert!(matches!(
        claim(&mut client, &alices[1]).await,
        tasks::Claimed::Task(_)
    ));
    let third = claim(&mut client, &alices[2]).await;
    assert!(
        matches!(third, tasks::Claimed::OwnerBusy { analysing: 2 }),
        "{third:?}"
    );
    assert!(matches!(
        claim(&mut client, &bobs).await,
        tasks::Claimed::Task(_)
    ));
    // A duplicate of a task in hand is nothing to claim, busy owner or not.
    assert!(matches!(
        claim(&mut client, &alices[0]).await,
        tasks::Claimed::Nothing
    ));
    // One of alice's ends: her third goes.
    let tasks::Claimed::Task(done) = first else {
        unreachable!()
    };
    assert!(tasks::fail_claimed(&client, done.claim(), "done")
        .await
        .unwrap());
    assert!(matches!(
        claim(&mut client, &alices[2]).await,
        tasks::Claimed::Task(_)
    ));
}

#[tokio::test]
async fn parallel_uploads_of_one_user_stay_within_the_active_task_quota() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    let alice = users::insert(&client, &new_user("alice")).await.unwrap();
    let quota = tasks::Quota {
        max_active_tasks: 3,
        max_stored_bytes: i64::MAX,
    };
    let inserts = (0..12).map(|_| {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let mut client = pool.get().await.unwrap();
            let task_id = Uuid::new_v4();
            tasks::insert_pending_within(
                &mut client,
                &tasks::NewTask {
                    task_id,
                    owner_id: Some(alice.id),
                    filename: "a.pcap".into(),
                    file_size_bytes: 100,
                    s3_key: format!("uploads/{}/{task_id}", alice.id),
                    expires_at: OffsetDateTime::now_utc() + Duration::hours(24),
                },
                quota,
            )
            .await
            .unwrap()
            .is_ok()
        })
    });
    let mut inserted = 0;
    for i in inserts.collect::<Vec<_>>() {
        inserted += usize::from(i.await.unwrap());
    }
    assert_eq!(inserted, 3);
    assert_eq!(
        tasks::usage(&client, alice.id).await.unwrap().active_tasks,
        3
    );
}
