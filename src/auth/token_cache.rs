//! A short-lived in-memory cache of userinfo answers per access token, so the hub's frequent
//! userinfo calls do not each cost a database round trip.
//!
//! Correctness: every revocation made by this process forgets the affected entries at once
//! (`forget_user`, `forget_grant`, `forget_token`), and no entry is trusted for longer than
//! `MAX_AGE`, which bounds how long a change made elsewhere (another hubdesk on the same
//! database, a manual SQL update) can go unnoticed.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::web::Bytes;
use time::OffsetDateTime;
use uuid::Uuid;

pub const MAX_AGE: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 50_000;

struct Entry {
    body: Bytes,
    user_id: i64,
    grant_id: Uuid,
    token_expires_at: OffsetDateTime,
    cached_at: Instant,
}

#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

impl TokenCache {
    pub fn get(&self, token_hash: &[u8]) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(token_hash)?;
        (e.cached_at.elapsed() < MAX_AGE && e.token_expires_at > OffsetDateTime::now_utc())
            .then(|| e.body.clone())
    }

    pub fn insert(
        &self,
        token_hash: Vec<u8>,
        body: Bytes,
        user_id: i64,
        grant_id: Uuid,
        token_expires_at: OffsetDateTime,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.cached_at.elapsed() < MAX_AGE);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            token_hash,
            Entry {
                body,
                user_id,
                grant_id,
                token_expires_at,
                cached_at: Instant::now(),
            },
        );
    }

    pub fn forget_user(&self, user_id: i64) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.user_id != user_id);
    }

    pub fn forget_grant(&self, grant_id: Uuid) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.grant_id != grant_id);
    }

    pub fn forget_token(&self, token_hash: &[u8]) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_by_user_grant_and_token() {
        let c = TokenCache::default();
        let later = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        let (g1, g2) = (Uuid::new_v4(), Uuid::new_v4());
        c.insert(vec![1], Bytes::from_static(b"a"), 1, g1, later);
        c.insert(vec![2], Bytes::from_static(b"b"), 2, g2, later);
        c.insert(vec![3], Bytes::from_static(b"c"), 2, g2, later);
        assert_eq!(c.get(&[1]).as_deref(), Some(&b"a"[..]));
        c.forget_user(1);
        assert!(c.get(&[1]).is_none());
        c.forget_token(&[2]);
        assert!(c.get(&[2]).is_none() && c.get(&[3]).is_some());
        c.forget_grant(g2);
        assert!(c.get(&[3]).is_none());
    }

    #[test]
    fn expired_tokens_are_not_served() {
        let c = TokenCache::default();
        c.insert(
            vec![1],
            Bytes::from_static(b"a"),
            1,
            Uuid::new_v4(),
            OffsetDateTime::now_utc() - time::Duration::seconds(1),
        );
        assert!(c.get(&[1]).is_none());
    }
}
