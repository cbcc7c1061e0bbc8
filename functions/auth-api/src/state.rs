//! What a function builds once at cold start and lends to every request.

use common::http::Cors;
use common::{ApiKeys, Settings};
use db::{DbError, Pool};
use security::csrf::CsrfService;
use security::jwt::TokenService;
use std::time::Instant;

#[derive(Debug)]
pub struct State {
    pub settings: Settings,
    pub pool: Pool,
    pub tokens: TokenService,
    pub csrf: CsrfService,
    pub cors: Cors,
    pub started: Instant,
}

impl State {
    /// Connects the pool (lazily: a database that is down does not stop the start).
    pub async fn new(settings: Settings, keys: &ApiKeys) -> Result<Self, DbError> {
        let pool = db::connect(&settings.database).await?;
        Ok(Self::with_pool(settings, keys, pool))
    }

    /// The keys go into the token and CSRF services; nothing else keeps them.
    pub fn with_pool(settings: Settings, keys: &ApiKeys, pool: Pool) -> Self {
        State {
            tokens: TokenService::new(keys.secret_key.expose().as_bytes()),
            csrf: CsrfService::new(keys.csrf_secret_key.expose().as_bytes()),
            cors: Cors::new(settings.allowed_origins.clone()),
            settings,
            pool,
            started: Instant::now(),
        }
    }
}
