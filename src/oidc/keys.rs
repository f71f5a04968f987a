//! id_token signing keys, one current key per algorithm: RS256 (the default OpenID Connect
//! requires every provider to support) and ES256 (smaller, what the hub's client uses). The
//! first of each is created on first start and kept in PostgreSQL, so it survives restarts and
//! is shared by every hubdesk on the same database. `hubdesk oidc rotate-key` stores a new key
//! of each algorithm and retires the old ones. Every running instance re-reads the
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

/// The signing algorithms hubdesk offers for id_tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum Alg {
    RS256,
    ES256,
}

impl Alg {
    pub const ALL: [Alg; 2] = [Alg::RS256, Alg::ES256];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Clone)]
pub struct SigningKey {
    pub alg: Alg,
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: serde_json::Value,
}

impl SigningKey {
    /// A new key of `alg`: (kid, PKCS#8 DER). RSA keys are 2048 bits (RFC 7518 §3.3 minimum).
    fn generate(alg: Alg) -> anyhow::Result<(String, Vec<u8>)> {
        match alg {
            Alg::ES256 => {
                let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
                let der = secret.to_pkcs8_der().context("encoding signing key")?;
                Ok((kid_of(&secret.public_key()), der.as_bytes().to_vec()))
            }
            Alg::RS256 => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                    .context("generating an RSA key")?;
                let der = key.to_pkcs8_der().context("encoding RSA key")?;
                Ok((rsa_kid(&key.to_public_key()), der.as_bytes().to_vec()))
            }
        }
    }

    fn from_der(alg: Alg, kid: String, der: &[u8]) -> anyhow::Result<Self> {
        let (mut jwk, encoding) = match alg {
            Alg::ES256 => {
                let secret = p256::SecretKey::from_pkcs8_der(der)
                    .context("stored signing key unreadable")?;
                let jwk = serde_json::to_value(secret.public_key().to_jwk()).context("JWK")?;
                (jwk, EncodingKey::from_ec_der(der))
            }
            Alg::RS256 => {
                use rsa::traits::PublicKeyParts as _;
                use rsa::{pkcs1::EncodeRsaPrivateKey as _, pkcs8::DecodePrivateKey as _};
                let key =
                    rsa::RsaPrivateKey::from_pkcs8_der(der).context("stored RSA key unreadable")?;
                let pkcs1 = key.to_pkcs1_der().context("RSA key as PKCS#1")?;
                let jwk = serde_json::json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
                });
                (jwk, EncodingKey::from_rsa_der(pkcs1.as_bytes()))
            }
        };
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("use".into(), "sig".into());
            obj.insert("alg".into(), alg.as_str().into());
        }
        Ok(Self {
            alg,
            kid,
            encoding,
            jwk,
        })
    }

    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let algorithm = match self.alg {
            Alg::ES256 => Algorithm::ES256,
            Alg::RS256 => Algorithm::RS256,
        };
        let mut header = Header::new(algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing id_token")
    }
}

/// The keys that sign (one per algorithm) and the JWKS document that publishes them with the
/// new and the recently retired ones.
struct Keys {
    signing: Vec<SigningKey>,
    jwks: serde_json::Value,
}

pub struct KeyRing {
    keys: RwLock<Arc<Keys>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one on a fresh database.
    pub async fn load_or_create(pool: &PgPool) -> anyhow::Result<Self> {
        let mut conn = pool.acquire().await?;
        for alg in Alg::ALL {
            if !db::oauth::has_current_key(&mut conn, alg.as_str()).await? {
                let (kid, der) = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
                    .await
                    .context("key generation task")??;
                db::oauth::insert_signing_key(&mut conn, alg.as_str(), &kid, &der).await?;
            }
        }
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

    /// Signs with the current key of `alg`.
    pub fn sign(&self, alg: Alg, claims: &impl Serialize) -> anyhow::Result<String> {
        let keys = self.current();
        let key = keys
            .signing
            .iter()
            .find(|k| k.alg == alg)
            .with_context(|| format!("no {} signing key", alg.as_str()))?;
        key.sign(claims)
    }

    /// The kid of the key that signs with `alg` now.
    pub fn signing_kid(&self, alg: Alg) -> String {
        let keys = self.current();
        keys.signing
            .iter()
            .find(|k| k.alg == alg)
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// The claims of an id_token this provider signed with a key it still publishes, issued by
    /// `issuer`; expiry is not checked (an `id_token_hint` may be old, OpenID Connect
    /// RP-Initiated Logout §2). `None` for anything else.
    pub fn verify_ours(&self, jwt: &str, issuer: &str) -> Option<serde_json::Value> {
        use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
        let header = decode_header(jwt).ok()?;
        let kid = header.kid?;
        let keys = self.current();
        let jwk = keys.jwks["keys"]
            .as_array()?
            .iter()
            .find(|k| k["kid"] == kid.as_str())?;
        let text = |k: &str| jwk[k].as_str();
        let (key, alg) = match text("alg")? {
            "ES256" => (
                DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?,
                Algorithm::ES256,
            ),
            "RS256" => (
                DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?,
                Algorithm::RS256,
            ),
            _ => return None,
        };
        if header.alg != alg {
            return None;
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer]);
        decode::<serde_json::Value>(jwt, &key, &validation)
            .ok()
            .map(|t| t.claims)
    }

    /// `{"keys": [...]}`: the signing keys first, then the others still published.
    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks.clone()
    }
}

async fn read(conn: &mut PgConnection) -> anyhow::Result<Keys> {
    let ahead = PUBLISH_AHEAD.as_secs() as i64;
    let stored = db::oauth::published_signing_keys(conn, ahead).await?;
    let mut keys = Vec::with_capacity(stored.len());
    for (alg, kid, der, ready) in stored {
        let alg = Alg::parse(&alg).with_context(|| format!("stored key {kid} has alg {alg}"))?;
        keys.push((SigningKey::from_der(alg, kid, &der)?, ready));
    }
    // Per algorithm: the newest key published long enough; if none is (a young database), the
    // one published longest. Keys come newest first.
    let mut signing = Vec::new();
    for alg in Alg::ALL {
        let of_alg = |(k, _): &(SigningKey, bool)| k.alg == alg;
        let at = keys
            .iter()
            .position(|kr| of_alg(kr) && kr.1)
            .or_else(|| keys.iter().rposition(of_alg))
            .with_context(|| format!("no {} signing key stored", alg.as_str()))?;
        signing.push(keys.remove(at).0);
    }
    let published = signing
        .iter()
        .map(|k| k.jwk.clone())
        .chain(keys.into_iter().map(|(k, _)| k.jwk))
        .collect::<Vec<_>>();
    Ok(Keys {
        signing,
        jwks: serde_json::json!({ "keys": published }),
    })
}

/// Stores a new signing key of each algorithm and retires the current ones. Returns the new
/// kids and how many keys were retired.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<(Vec<String>, u64)> {
    let mut new = Vec::new();
    for alg in Alg::ALL {
        let generated = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
            .await
            .context("key generation task")??;
        new.push((alg, generated));
    }
    let mut tx = pool.begin().await?;
    let mut retired = 0;
    let mut kids = Vec::new();
    let actor = crate::domain::Actor::Cli;
    for (alg, (kid, der)) in new {
        retired += db::oauth::rotate_signing_key(&mut tx, alg.as_str(), &kid, &der).await?;
        let detail = alg.as_str();
        db::audit::record(&mut tx, &actor, "oidc.rotate_key", Some(&kid), Some(detail)).await?;
        kids.push(kid);
    }
    tx.commit().await?;
    Ok((kids, retired))
}

fn kid_of(public: &p256::PublicKey) -> String {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let digest = Sha256::digest(public.to_encoded_point(false).as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// RFC 7638 thumbprint of the public key, shortened like the EC kids.
fn rsa_kid(public: &rsa::RsaPublicKey) -> String {
    use rsa::traits::PublicKeyParts as _;
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(public.n().to_bytes_be())
    );
    URL_SAFE_NO_PAD.encode(&Sha256::digest(canonical.as_bytes())[..12])
}
