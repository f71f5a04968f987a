//! argon2id hashing on the blocking pool, with a bound on concurrent hashes (each one holds
//! `m` KiB of memory) and a dummy verify for unknown users so timing reveals nothing.
use std::sync::Arc;

use anyhow::Context;
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Correct password; the stored hash uses the configured parameters.
    Yes,
    /// Correct password, but the hash uses old parameters: store this new hash.
    YesRehashed(String),
    No,
}

impl Hasher {
    pub fn new(cfg: &PasswordConfig, permits: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let dummy_hash = hash_with(&params, "hubdesk-dummy-password")?.into();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(permits.max(1))),
            dummy_hash,
        })
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let params = self.params.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .context("hashing task")?
    }

    /// Verifies `password` against `stored`; with `None` (unknown user) a dummy hash is verified
    /// so the response takes as long as for a real account, and the answer is `No`.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> anyhow::Result<Verified> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let known = stored.is_some();
        let stored = stored
            .map(str::to_string)
            .unwrap_or_else(|| self.dummy_hash.to_string());
        let params = self.params.clone();
        let password = password.to_string();
        let outcome = tokio::task::spawn_blocking(move || verify_with(&params, &stored, &password))
            .await
            .context("verify task")??;
        Ok(if known { outcome } else { Verified::No })
    }

    /// Single-thread verify time in milliseconds (median of `rounds`), for `hubdesk bench-hash`.
    pub fn measure_verify_ms(&self, rounds: usize) -> anyhow::Result<f64> {
        let hash = hash_with(&self.params, "measure-me-please")?;
        let mut times: Vec<f64> = (0..rounds.max(1))
            .map(|_| {
                let t = std::time::Instant::now();
                let _ = verify_with(&self.params, &hash, "measure-me-please");
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    pub fn describe(&self) -> String {
        format!(
            "argon2id m={} t={} p={}",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost()
        )
    }
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Hasher::argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

fn verify_with(params: &Params, stored: &str, password: &str) -> anyhow::Result<Verified> {
    let parsed =
        PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
    // Verify with the hash's own parameters (argon2 reads them from the PHC string).
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    if !ok {
        return Ok(Verified::No);
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == params.m_cost()
                && p.t_cost() == params.t_cost()
                && p.p_cost() == params.p_cost()
        });
    if current {
        Ok(Verified::Yes)
    } else {
        Ok(Verified::YesRehashed(hash_with(params, password)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn hasher() -> Hasher {
        Hasher::new(&Config::default().password, 2).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hasher();
        let stored = h.hash("correct horse").await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            h.verify(Some(&stored), "correct horse").await.unwrap(),
            Verified::Yes
        );
        assert_eq!(
            h.verify(Some(&stored), "wrong").await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let h = hasher();
        assert_eq!(
            h.verify(None, "hubdesk-dummy-password").await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn old_parameters_are_rehashed() {
        let old = Params::new(8192, 1, 1, None).unwrap();
        let stored = hash_with(&old, "pw-pw-pw-pw").unwrap();
        match hasher().verify(Some(&stored), "pw-pw-pw-pw").await.unwrap() {
            Verified::YesRehashed(new) => assert!(new.contains("m=19456,t=2,p=1")),
            other => panic!("expected rehash, got {other:?}"),
        }
    }
}
