//! What every handler shares. Built once in `startup`, passed as `web::Data`, no globals.
use std::sync::Arc;

use sqlx::PgPool;

use crate::{auth::Hasher, config::Config};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub hasher: Hasher,
}

impl AppState {
    pub fn session_cookie_name(&self) -> &'static str {
        if self.config.secure_cookies() {
            "__Host-hubdesk-session"
        } else {
            "hubdesk-session"
        }
    }
    pub fn csrf_cookie_name(&self) -> &'static str {
        if self.config.secure_cookies() {
            "__Host-hubdesk-csrf"
        } else {
            "hubdesk-csrf"
        }
    }
}
