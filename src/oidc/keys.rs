//! The ES256 signing key. Created on first start, kept in PostgreSQL so it survives restarts
//! (and is shared by every hubdesk on the same database), published in JWKS.
use anyhow::Context;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::db;

#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: serde_json::Value,
}

impl SigningKey {
    pub async fn load_or_create(pool: &PgPool) -> anyhow::Result<Self> {
        let mut conn = pool.acquire().await?;
        if db::oauth::signing_keys(&mut conn).await?.is_empty() {
            let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let der = secret.to_pkcs8_der().context("encoding signing key")?;
            let kid = kid_of(&secret.public_key());
            db::oauth::insert_signing_key(&mut conn, &kid, der.as_bytes()).await?;
        }
        let (kid, der) = db::oauth::signing_keys(&mut conn)
            .await?
            .into_iter()
            .next()
            .context("no signing key")?;
        Self::from_der(kid, &der)
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

fn kid_of(public: &p256::PublicKey) -> String {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let digest = Sha256::digest(public.to_encoded_point(false).as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}
