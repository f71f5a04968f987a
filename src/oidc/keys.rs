//! ES256 signing keys. The first is created on first start and kept in PostgreSQL, so it
//! survives restarts and is shared by every hubdesk on the same database. `hubdesk oidc
//! rotate-key` stores a new key and retires the old one. Every running instance re-reads the
//! keys each `RELOAD_EVERY` and publishes the new key at once, but signs with it only after
//! `PUBLISH_AHEAD` (JWKS cache lifetime + reload interval), so no relying party meets a `kid`
//! its cached JWKS lacks. A retired key stays in JWKS for `db::oauth::RETIRED_KEY_DAYS`, so
//! id_tokens it signed still verify, then it is deleted.
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::db;

/// How often a running instance re-reads the keys from the database.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// How long clients may cache `/oauth/jwks.json` (its `Cache-Control: max-age`).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// A new key signs only once it has been published this long.
pub const PUBLISH_AHEAD: Duration =
    Duration::from_secs(JWKS_MAX_AGE.as_secs() + RELOAD_EVERY.as_secs());

#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: serde_json::Value,
}

impl SigningKey {
    fn generate() -> anyhow::Result<(String, Vec<u8>)> {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().context("encoding signing key")?;
        Ok((kid_of(&secret.public_key()), der.as_bytes().to_vec()))
    }

    fn from_der(kid: String, der: &[u8]) -> anyhow::Result<Self> {
        let secret =
            p256::SecretKey::from_pkcs8_der(der).context("stored signing key unreadable")?;
        let mut jwk = serde_json::to_value(secret.public_key().to_jwk()).context("JWK")?;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("use".into(), "sig".into());
            obj.insert("alg".into(), "ES256".into());
        }
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ec_der(der),
            jwk,
        })
    }

    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing id_token")
    }
}

/// The key that signs and the JWKS document that publishes it with the recently retired ones.
struct Keys {
    signing: SigningKey,
    jwks: serde_json::Value,
}

pub struct KeyRing {
    keys: RwLock<Arc<Keys>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one on a fresh database.
    pub async fn load_or_create(pool: &PgPool) -> anyhow::Result<Self> {
        let mut conn = pool.acquire().await?;
        let (kid, der) = SigningKey::generate()?;
        db::oauth::insert_signing_key(&mut conn, &kid, &der).await?;
        let keys = read(&mut conn).await?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
        })
    }

    /// Re-reads the keys (after a rotation by another process).
    pub async fn reload(&self, pool: &PgPool) -> anyhow::Result<()> {
        let mut conn = pool.acquire().await?;
        let keys = read(&mut conn).await?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    fn current(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        self.current().signing.sign(claims)
    }

    /// The kid of the key that signs now.
    pub fn signing_kid(&self) -> String {
        self.current().signing.kid.clone()
    }

    /// `{"keys": [...]}`: the signing key first, then the others still published.
    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks.clone()
    }
}

async fn read(conn: &mut PgConnection) -> anyhow::Result<Keys> {
    let ahead = PUBLISH_AHEAD.as_secs() as i64;
    let mut keys = db::oauth::published_signing_keys(conn, ahead)
        .await?
        .into_iter()
        .map(|(kid, der, ready)| SigningKey::from_der(kid, &der).map(|k| (k, ready)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!keys.is_empty(), "no signing key stored");
    // The newest key published long enough; if none is (a young database), the one published
    // longest.
    let at = (keys.iter().position(|(_, ready)| *ready)).unwrap_or(keys.len() - 1);
    let (signing, _) = keys.remove(at);
    let published = std::iter::once(signing.jwk.clone())
        .chain(keys.into_iter().map(|(k, _)| k.jwk))
        .collect::<Vec<_>>();
    Ok(Keys {
        signing,
        jwks: serde_json::json!({ "keys": published }),
    })
}

/// Stores a new signing key and retires the current one. Returns the new kid and how many keys
/// were retired.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<(String, u64)> {
    let (kid, der) = SigningKey::generate()?;
    let mut tx = pool.begin().await?;
    let retired = db::oauth::rotate_signing_key(&mut tx, &kid, &der).await?;
    let actor = crate::domain::Actor::Cli;
    db::audit::record(&mut tx, &actor, "oidc.rotate_key", Some(&kid), None).await?;
    tx.commit().await?;
    Ok((kid, retired))
}

fn kid_of(public: &p256::PublicKey) -> String {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let digest = Sha256::digest(public.to_encoded_point(false).as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}
