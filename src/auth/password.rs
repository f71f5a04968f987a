//! argon2id hashing on the blocking pool, with a bound on concurrent hashes and a dummy verify
//! for unknown users so timing reveals nothing.
//!
//! Memory: each hash needs `m` KiB of working memory (19 MiB at the OWASP floor). Allocating it
//! per hash makes glibc keep freed buffers in per-thread arenas (RSS grew by ~20 MiB per hash,
//! to over 1 GiB in a login burst), and zeroing fresh pages costs CPU. So the hasher keeps one
//! buffer per permit and reuses it: memory stays at permits × m.
use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use argon2::{password_hash::PasswordHash, Algorithm, Argon2, Block, Params, Version};
use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    size: usize,
    buffers: Arc<Buffers>,
    dummy_hash: Arc<str>,
    queue_wait: Duration,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Correct password; the stored hash uses the configured parameters.
    Yes,
    /// Correct password, but the hash uses old parameters: store this new hash.
    YesRehashed(String),
    No,
}

/// How long a login waits for a free hasher before it is told the server is busy. A burst of
/// 200 logins clears in ~5 s on two cores; a flood of requests must not queue for minutes.
pub const QUEUE_WAIT: Duration = Duration::from_secs(30);

/// The outcome of [`Hasher::verify_gated`].
#[derive(Debug)]
pub enum Gated<T> {
    /// The answer, and the hasher still held: drop it once a failure is recorded, so the next
    /// attempt's gate sees that failure.
    Verified(Verified, HeldHasher),
    /// The gate, run once a hasher was free, refused with this reason.
    Refused(T),
    /// No hasher became free in time (`QUEUE_WAIT` unless set otherwise).
    Busy,
}

/// A hasher slot kept after a verify; dropping it lets the next login through.
#[derive(Debug)]
pub struct HeldHasher(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

/// Reusable argon2 working memory, at most one buffer per permit.
struct Buffers {
    free: Mutex<Vec<Vec<Block>>>,
    keep: usize,
}

impl Buffers {
    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        match free.iter().position(|b| b.len() >= blocks) {
            Some(i) => free.swap_remove(i),
            None => vec![Block::default(); blocks],
        }
    }

    fn give(&self, buffer: Vec<Block>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(buffer);
        }
    }

    /// Runs `f` with a buffer of at least `blocks` blocks.
    fn with<R>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let mut buffer = self.take(blocks);
        let result = f(&mut buffer);
        self.give(buffer);
        result
    }
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
        let permits = permits.max(1);
        let buffers = Arc::new(Buffers {
            free: Mutex::new(Vec::new()),
            keep: permits,
        });
        let dummy_hash = buffers
            .with(params.block_count(), |mem| {
                hash_with(&params, "hubdesk-dummy-password", mem)
            })?
            .into();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            size: permits,
            buffers,
            dummy_hash,
            queue_wait: QUEUE_WAIT,
        })
    }

    /// How many hashes may run at once.
    pub fn permits(&self) -> usize {
        self.size
    }

    /// Another wait for [`verify_gated`](Self::verify_gated) than [`QUEUE_WAIT`] (tests).
    pub fn with_queue_wait(mut self, wait: Duration) -> Self {
        self.queue_wait = wait;
        self
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let params = self.params.clone();
        let buffers = self.buffers.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            buffers.with(params.block_count(), |mem| {
                hash_with(&params, &password, mem)
            })
        })
        .await
        .context("hashing task")?
    }

    /// Verifies `password` against `stored`; with `None` (unknown user) a dummy hash is verified
    /// so the response takes as long as for a real account, and the answer is `No`.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> anyhow::Result<Verified> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        self.verify_now(stored, password).await
    }

    /// Like [`verify`](Self::verify) for logins: waits at most `queue_wait` for a hasher, then,
    /// holding it, runs `gate` (the throttle check) and verifies only if the gate is open
    /// (`Ok(None)`). The hasher stays held until the caller drops the returned `HeldHasher`
    /// (after recording a failure). So parallel attempts cannot slip past a lock that earlier
    /// failures set: at most one per hasher is between its check and its recorded failure.
    pub async fn verify_gated<T, Fut>(
        &self,
        stored: Option<&str>,
        password: &str,
        gate: impl FnOnce() -> Fut,
    ) -> anyhow::Result<Gated<T>>
    where
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let wait = tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned());
        let Ok(permit) = wait.await else {
            return Ok(Gated::Busy);
        };
        let permit = permit.context("hasher closed")?;
        if let Some(reason) = gate().await? {
            return Ok(Gated::Refused(reason));
        }
        let verified = self.verify_now(stored, password).await?;
        Ok(Gated::Verified(verified, HeldHasher(permit)))
    }

    async fn verify_now(&self, stored: Option<&str>, password: &str) -> anyhow::Result<Verified> {
        let known = stored.is_some();
        let stored = stored
            .map(str::to_string)
            .unwrap_or_else(|| self.dummy_hash.to_string());
        let params = self.params.clone();
        let buffers = self.buffers.clone();
        let password = password.to_string();
        let outcome = tokio::task::spawn_blocking(move || {
            buffers.with(params.block_count(), |mem| {
                verify_with(&params, &stored, &password, mem)
            })
        })
        .await
        .context("verify task")??;
        Ok(if known { outcome } else { Verified::No })
    }

    /// Single-thread verify time in milliseconds (median of `rounds`), for `hubdesk bench-hash`.
    pub fn measure_verify_ms(&self, rounds: usize) -> anyhow::Result<f64> {
        let mut mem = vec![Block::default(); self.params.block_count()];
        let hash = hash_with(&self.params, "measure-me-please", &mut mem)?;
        let mut times: Vec<f64> = (0..rounds.max(1))
            .map(|_| {
                let t = std::time::Instant::now();
                let _ = verify_with(&self.params, &hash, "measure-me-please", &mut mem);
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

/// argon2id over the given working memory, as a PHC string
/// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`, unpadded standard base64).
fn hash_with(params: &Params, password: &str, mem: &mut [Block]) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, mem)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Verifies against a PHC string with the parameters it names (old hashes keep working),
/// comparing in constant time; reports when the hash should be upgraded.
fn verify_with(
    params: &Params,
    stored: &str,
    password: &str,
    mem: &mut [Block],
) -> anyhow::Result<Verified> {
    let parsed =
        PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
    let algorithm =
        Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?,
        None => Version::V0x13,
    };
    let stored_params =
        Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed
        .salt
        .context("stored hash has no salt")?
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("stored hash salt: {e}"))?;
    let expected = parsed.hash.context("stored hash has no output")?;
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, stored_params.clone());
    let needed = stored_params.block_count();
    let computed = if mem.len() >= needed {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut *mem)
    } else {
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            vec![Block::default(); needed],
        )
    };
    computed.map_err(|e| anyhow::anyhow!("verifying password: {e}"))?;
    if !bool::from(out.as_slice().ct_eq(expected)) {
        return Ok(Verified::No);
    }
    let current = algorithm == Algorithm::Argon2id
        && version == Version::V0x13
        && stored_params.m_cost() == params.m_cost()
        && stored_params.t_cost() == params.t_cost()
        && stored_params.p_cost() == params.p_cost();
    if current {
        Ok(Verified::Yes)
    } else {
        Ok(Verified::YesRehashed(hash_with(params, password, mem)?))
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};

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
    async fn gated_verify_checks_the_gate_holding_a_hasher_and_gives_up_when_all_are_busy() {
        let h = Hasher::new(&Config::default().password, 1)
            .unwrap()
            .with_queue_wait(Duration::from_millis(100));
        let stored = h.hash("correct horse").await.unwrap();
        let open = || async { Ok(None::<&str>) };
        let held = match h.verify_gated(Some(&stored), "correct horse", open).await {
            Ok(Gated::Verified(Verified::Yes, held)) => held,
            other => panic!("{other:?}"),
        };
        // While the caller holds the hasher (recording a failure), nobody else gets it.
        assert!(matches!(
            h.verify_gated(Some(&stored), "correct horse", open).await,
            Ok(Gated::Busy)
        ));
        drop(held);
        let closed = || async { Ok(Some("locked")) };
        assert!(matches!(
            h.verify_gated(Some(&stored), "correct horse", closed).await,
            Ok(Gated::Refused("locked"))
        ));
        // The only hasher is held (by a gate that takes its time): the next one is told "busy".
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let slow = {
            let (h, stored) = (h.clone(), stored.clone());
            tokio::spawn(async move {
                let gate = || async move {
                    entered_tx.send(()).unwrap();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok(None::<&str>)
                };
                h.verify_gated(Some(&stored), "correct horse", gate).await
            })
        };
        entered_rx.await.unwrap();
        assert!(matches!(
            h.verify_gated(Some(&stored), "correct horse", open).await,
            Ok(Gated::Busy)
        ));
        assert!(matches!(
            slow.await.unwrap(),
            Ok(Gated::Verified(Verified::Yes, _))
        ));
    }

    #[tokio::test]
    async fn interoperates_with_the_argon2_crates_own_phc_handling() {
        let h = hasher();
        let ours = h.hash("correct horse").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        let theirs = Argon2::default()
            .hash_password(
                b"battery staple",
                &SaltString::generate(&mut argon2::password_hash::rand_core::OsRng),
            )
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify(Some(&theirs), "battery staple").await.unwrap(),
            Verified::Yes
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
        let stored = hash_with(&old, "pw-pw-pw-pw", &mut vec![Block::default(); 8192]).unwrap();
        match hasher().verify(Some(&stored), "pw-pw-pw-pw").await.unwrap() {
            Verified::YesRehashed(new) => assert!(new.contains("m=19456,t=2,p=1")),
            other => panic!("expected rehash, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn larger_stored_parameters_still_verify() {
        let big = Params::new(32768, 2, 1, None).unwrap();
        let stored = hash_with(&big, "pw-pw-pw-pw", &mut vec![Block::default(); 32768]).unwrap();
        assert!(matches!(
            hasher().verify(Some(&stored), "pw-pw-pw-pw").await.unwrap(),
            Verified::YesRehashed(_)
        ));
    }

    #[test]
    fn buffers_are_reused_and_bounded() {
        let b = Buffers {
            free: Mutex::new(Vec::new()),
            keep: 1,
        };
        let first = b.take(16);
        let ptr = first.as_ptr();
        b.give(first);
        b.give(vec![Block::default(); 16]);
        assert_eq!(b.free.lock().unwrap().len(), 1, "keeps at most `keep`");
        let again = b.take(16);
        assert_eq!(again.as_ptr(), ptr, "reused");
    }
}
