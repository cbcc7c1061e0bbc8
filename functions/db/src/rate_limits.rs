//! Fixed-window rate-limit counters in Postgres, shared by every function instance.

use crate::{DbError, GenericClient};

/// Named counters (the `bucket` column).
/// Failed logins per (account, address): the limit that refuses.
pub const LOGIN_ACCOUNT_ADDRESS: &str = "login_account_address";
/// Failed logins per account from every address: a delay, never a refusal, so nobody can lock
/// the owner out from elsewhere.
pub const LOGIN_ACCOUNT: &str = "login_account";
/// Failed logins per address, whatever the account.
pub const LOGIN_IP: &str = "login_ip";
pub const REGISTER_IP: &str = "register_ip";
pub const UPLOAD_USER: &str = "upload_user";

/// Longest key stored; longer ones (hostile usernames) are cut, which only merges counters.
const MAX_KEY_CHARS: usize = 255;

fn clip(key: &str) -> String {
    key.chars().take(MAX_KEY_CHARS).collect()
}

/// What one attempt against a counter was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted; `hits` attempts in the window so far, this one included.
    Admitted { hits: u32 },
    /// `max` attempts were already counted in the window: not counted, refused for this long.
    Blocked { retry_after_secs: u64 },
}

impl Attempt {
    pub fn retry_after(self) -> Option<u64> {
        match self {
            Attempt::Blocked { retry_after_secs } => Some(retry_after_secs),
            Attempt::Admitted { .. } => None,
        }
    }
}

/// Counts one attempt on `key` unless its window already holds `max`. Count and decision are one
/// statement (the upsert locks the counter's row), so parallel attempts are admitted at most
/// `max` times in a window whatever the number of function instances: checking first and
/// counting after let 8 of 40 parallel guesses through where 5 were allowed.
#[tracing::instrument(skip(c, key))]
pub async fn attempt(
    c: &impl GenericClient,
    bucket: &str,
    key: &str,
    window_secs: u32,
    max: u32,
) -> Result<Attempt, DbError> {
    let window = f64::from(window_secs);
    let key = clip(key);
    let max = i32::try_from(max).unwrap_or(i32::MAX);
    let stmt = c
        .prepare_cached(
            "INSERT INTO rate_limits AS r (bucket, key, window_start, hits)
             SELECT $1, $2, now(), 1 WHERE $4::int > 0
             ON CONFLICT (bucket, key) DO UPDATE SET
                hits = CASE WHEN r.window_start + make_interval(secs => $3::float8) <= now()
                            THEN 1 ELSE r.hits + 1 END,
                window_start = CASE WHEN r.window_start + make_interval(secs => $3::float8) <= now()
                                    THEN now() ELSE r.window_start END
             WHERE r.window_start + make_interval(secs => $3::float8) <= now() OR r.hits < $4::int
             RETURNING hits",
        )
        .await?;
    if let Some(row) = c.query_opt(&stmt, &[&bucket, &key, &window, &max]).await? {
        let hits: i32 = row.try_get(0)?;
        return Ok(Attempt::Admitted {
            hits: hits.max(0) as u32,
        });
    }
    // Refused: the decision is made; this only tells the client when to come back.
    let stmt = c
        .prepare_cached(
            "SELECT ceil(extract(epoch FROM (window_start + make_interval(secs => $3::float8)) - now()))::bigint
             FROM rate_limits WHERE bucket = $1 AND key = $2",
        )
        .await?;
    let remaining: Option<i64> = c
        .query_opt(&stmt, &[&bucket, &key, &window])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(Attempt::Blocked {
        retry_after_secs: remaining.unwrap_or(i64::from(window_secs)).max(1) as u64,
    })
}

/// Gives back one attempt (one that turned out not to be a failure, or was refused by another
/// counter before anything was tried).
#[tracing::instrument(skip(c, key))]
pub async fn refund(c: &impl GenericClient, bucket: &str, key: &str) -> Result<(), DbError> {
    let stmt = c
        .prepare_cached(
            "UPDATE rate_limits SET hits = greatest(hits - 1, 0) WHERE bucket = $1 AND key = $2",
        )
        .await?;
    c.execute(&stmt, &[&bucket, &clip(key)]).await?;
    Ok(())
}

/// Counts one event with no limit (the failures against an account from every address, which
/// slow its logins down but never refuse them). Returns the count in the window.
#[tracing::instrument(skip(c, key))]
pub async fn hit(
    c: &impl GenericClient,
    bucket: &str,
    key: &str,
    window_secs: u32,
) -> Result<u32, DbError> {
    match attempt(c, bucket, key, window_secs, u32::MAX).await? {
        Attempt::Admitted { hits } => Ok(hits),
        Attempt::Blocked { .. } => Ok(u32::MAX),
    }
}

/// The count in `key`'s current window (0 when none).
#[tracing::instrument(skip(c, key))]
pub async fn count(
    c: &impl GenericClient,
    bucket: &str,
    key: &str,
    window_secs: u32,
) -> Result<u32, DbError> {
    let stmt = c
        .prepare_cached(
            "SELECT hits FROM rate_limits
             WHERE bucket = $1 AND key = $2 AND window_start + make_interval(secs => $3::float8) > now()",
        )
        .await?;
    let row = c
        .query_opt(&stmt, &[&bucket, &clip(key), &f64::from(window_secs)])
        .await?;
    Ok(row
        .map(|r| r.try_get::<_, i32>(0))
        .transpose()?
        .map_or(0, |h| h.max(0) as u32))
}

/// Forgets the counter (e.g. the account's failures after a successful login).
#[tracing::instrument(skip(c, key))]
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
