//! Migrations, brise-glace admin and repositories against the real Postgres.

use db::test_support::{fresh_database, fresh_database_unmigrated};
use db::users::{self, NewUser, Role};
use db::{rate_limits, tasks};
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
async fn rate_limit_blocks_after_the_maximum_and_reports_the_wait() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    for _ in 0..4 {
        rate_limits::hit(&client, rate_limits::LOGIN_ACCOUNT, "gina", 900)
            .await
            .unwrap();
    }
    assert_eq!(
        rate_limits::blocked_for(&client, rate_limits::LOGIN_ACCOUNT, "gina", 900, 5)
            .await
            .unwrap(),
        None
    );

    rate_limits::hit(&client, rate_limits::LOGIN_ACCOUNT, "gina", 900)
        .await
        .unwrap();
    let wait = rate_limits::blocked_for(&client, rate_limits::LOGIN_ACCOUNT, "gina", 900, 5)
        .await
        .unwrap();

    assert!(
        matches!(wait, Some(s) if (890..=900).contains(&s)),
        "{wait:?}"
    );
    rate_limits::clear(&client, rate_limits::LOGIN_ACCOUNT, "gina")
        .await
        .unwrap();
    assert_eq!(
        rate_limits::blocked_for(&client, rate_limits::LOGIN_ACCOUNT, "gina", 900, 5)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_elapsed_window_starts_counting_again() {
    let db = fresh_database().await;
    let client = db.pool.get().await.unwrap();
    for _ in 0..5 {
        rate_limits::hit(&client, rate_limits::LOGIN_IP, "10.0.0.1", 1)
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        rate_limits::blocked_for(&client, rate_limits::LOGIN_IP, "10.0.0.1", 1, 5)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        rate_limits::hit(&client, rate_limits::LOGIN_IP, "10.0.0.1", 1)
            .await
            .unwrap(),
        1
    );
}
