//! One operation per home, across hubdesk instances: a session-level PostgreSQL advisory lock
//! on a connection taken out of the pool for the operation's length. All of the operation's
//! journal writes go through that connection. When a process dies, its connections die and
//! PostgreSQL drops their locks: a lock never outlives its holder, so `recover` can tell a
//! crashed operation (lock free, row running) from a live one (lock held).
use sqlx::{pool::PoolConnection, PgConnection, PgPool, Postgres};

use crate::db;

pub(super) struct OpLock {
    conn: Option<PoolConnection<Postgres>>,
    username: String,
    held: bool,
}

impl OpLock {
    /// The lock of `username`'s home, or `None` when someone holds it.
    pub(super) async fn try_acquire(pool: &PgPool, username: &str) -> sqlx::Result<Option<Self>> {
        let mut conn = pool.acquire().await?;
        if !db::homes::try_lock(&mut conn, username).await? {
            return Ok(None);
        }
        Ok(Some(Self {
            conn: Some(conn),
            username: username.to_string(),
            held: true,
        }))
    }

    pub(super) fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("an OpLock keeps its connection until dropped")
    }

    /// Unlocks and gives the connection back to the pool. If the unlock fails the connection
    /// is closed instead, which unlocks too (a pooled connection must never carry a lock).
    pub(super) async fn release(mut self) {
        self.unlock().await;
    }

    /// What a crash does to the lock (tests' failpoints): it is gone, nothing else is written.
    pub(super) async fn crash(&mut self) {
        self.unlock().await;
    }

    async fn unlock(&mut self) {
        if !self.held {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match db::homes::unlock(conn, &self.username).await {
            Ok(true) => self.held = false,
            Ok(false) | Err(_) => {
                tracing::warn!(username = %self.username, "home lock: unlock failed; closing its connection");
                if let Some(conn) = self.conn.take() {
                    drop(conn.detach());
                }
                self.held = false;
            }
        }
    }
}

impl Drop for OpLock {
    /// Dropped while held (a panic, a cancelled future): close the connection rather than
    /// return it to the pool with the lock.
    fn drop(&mut self) {
        if self.held {
            if let Some(conn) = self.conn.take() {
                drop(conn.detach());
            }
        }
    }
}
