//! Fixed-window rate-limit counters in Postgres, shared by every function instance.

use crate::{DbError, GenericClient};

/// Named counters (the `bucket` column).
pub const LOGIN_ACCOUNT: &str = "login_account";
pub const LOGIN_IP: &str = "login_ip";
pub const REGISTER_IP: &str = "register_ip";
pub const UPLOAD_USER: &str = "upload_user";

/// Longest key stored; longer ones (hostile usernames) are cut, which only merges counters.
const MAX_KEY_CHARS: usize = 255;

fn clip(key: &str) -> String {
    key.chars().take(MAX_KEY_CHARS).collect()
}

/// If `key` already has `max` hits in its current window, the seconds until the window ends.
#[tracing::instrument(skip(c))]
pub async fn blocked_for(
    c: &impl GenericClient,
    bucket: &str,
    key: &str,
    window_secs: u32,
    max: u32,
) -> Result<Option<u64>, DbError> {
    let stmt = c
        .prepare_cached(
            "SELECT hits, ceil(extract(epoch FROM (window_start + make_interval(secs => $3::float8)) - now()))::bigint
             FROM rate_limits
             WHERE bucket = $1 AND key = $2 AND window_start + make_interval(secs => $3::float8) > now()",
        )
        .await?;
    let row = c
        .query_opt(&stmt, &[&bucket, &clip(key), &f64::from(window_secs)])
        .await?;
    Ok(match row {
        Some(r) => {
            let hits: i32 = r.try_get(0)?;
            let remaining: i64 = r.try_get(1)?;
            (hits as i64 >= i64::from(max)).then_some(remaining.max(1) as u64)
        }
        None => None,
    })
}

/// Counts one hit; a window that has elapsed starts again. Returns the hits in the window.
#[tracing::instrument(skip(c))]
pub async fn hit(
    c: &impl GenericClient,
    bucket: &str,
    key: &str,
    window_secs: u32,
) -> Result<u32, DbError> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO rate_limits AS r (bucket, key, window_start, hits) VALUES ($1, $2, now(), 1)
             ON CONFLICT (bucket, key) DO UPDATE SET
                hits = CASE WHEN r.window_start + make_interval(secs => $3::float8) <= now() THEN 1 ELSE r.hits + 1 END,
                window_start = CASE WHEN r.window_start + make_interval(secs => $3::float8) <= now()
                                    THEN now() ELSE r.window_start END
             RETURNING hits",
        )
        .await?;
    let row = c
        .query_one(&stmt, &[&bucket, &clip(key), &f64::from(window_secs)])
        .await?;
    let hits: i32 = row.try_get(0)?;
    Ok(hits.max(0) as u32)
}

/// Forgets the counter (e.g. the account's failures after a successful login).
#[tracing::instrument(skip(c))]
pub async fn clear(c: &impl GenericClient, bucket: &str, key: &str) -> Result<(), DbError> {
    let stmt = c
        .prepare_cached("DELETE FROM rate_limits WHERE bucket = $1 AND key = $2")
        .await?;
    c.execute(&stmt, &[&bucket, &clip(key)]).await?;
    Ok(())
}

/// Removes counters whose window ended more than `older_than_secs` ago (janitor).
#[tracing::instrument(skip(c))]
pub async fn purge(c: &impl GenericClient, older_than_secs: u32) -> Result<u64, DbError> {
    Ok(c.execute(
        "DELETE FROM rate_limits WHERE window_start < now() - make_interval(secs => $1::float8)",
        &[&f64::from(older_than_secs)],
    )
    .await?)
}
