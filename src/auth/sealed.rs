//! Secrets sealed to a key the server does not keep.
//!
//! A bulk password reset runs as a background job, yet its new passwords must be readable only
//! by the counselor who asked, and only for a while. The page that starts the job makes an
//! [`OpeningKey`] and hands it to that browser (a cookie); the database keeps only the public
//! [`SealingKey`]. The job seals each password to it (ECIES: an ephemeral P-256 key agreed
//! with the sealing key, HKDF-SHA256, AES-256-GCM), so a database dump, a backup or anyone
//! with SQL access sees ciphertext that no key on the server opens.
//!
//! A sealed blob is `ephemeral public key (33 bytes, SEC1 compressed) ‖ nonce (12) ‖
//! ciphertext with its tag`. `context` (e.g. job id and user id) is authenticated, so a blob
//! copied to another row does not open there.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use p256::{ecdh, elliptic_curve::sec1::ToEncodedPoint, PublicKey, SecretKey};
use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN},
    hkdf,
};

const POINT_LEN: usize = 33;
const INFO: &[u8] = b"hubdesk sealed v1";

/// The private half: it opens what was sealed to its [`SealingKey`]. `Debug` prints nothing.
pub struct OpeningKey(SecretKey);

/// The public half, stored beside the sealed secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingKey(PublicKey);

impl std::fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpeningKey(***)")
    }
}

impl OpeningKey {
    pub fn generate() -> Self {
        Self(SecretKey::random(&mut rand::rngs::OsRng))
    }

    pub fn sealing_key(&self) -> SealingKey {
        SealingKey(self.0.public_key())
    }

    /// URL-safe base64 of the 32-byte scalar (43 characters): a cookie value.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_bytes())
    }

    pub fn from_text(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        SecretKey::from_slice(&bytes).ok().map(Self)
    }

    /// The plaintext, or `None` when the blob was not sealed to this key, was sealed for
    /// another `context`, or was altered.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < POINT_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (point, rest) = sealed.split_at(POINT_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let ephemeral = PublicKey::from_sec1_bytes(point).ok()?;
        let shared = ecdh::diffie_hellman(self.0.to_nonzero_scalar(), ephemeral.as_affine());
        let key = derive(
            shared.raw_secret_bytes(),
            point,
            &self.sealing_key().to_bytes(),
        )?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

impl SealingKey {
    /// SEC1 compressed (33 bytes), for the database.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_encoded_point(true).as_bytes().to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        PublicKey::from_sec1_bytes(bytes).ok().map(Self)
    }

    /// Seals `plaintext` so that only the matching [`OpeningKey`] opens it, for `context`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let ephemeral = ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
        let point = ephemeral.public_key().to_encoded_point(true);
        let shared = ephemeral.diffie_hellman(&self.0);
        let key = derive(
            shared.raw_secret_bytes(),
            point.as_bytes(),
            &self.to_bytes(),
        )
        .ok_or_else(|| anyhow::anyhow!("key derivation failed"))?;
        // Each seal has its own ephemeral key, hence its own AES key: a random nonce is more
        // than enough.
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut buf,
        )
        .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = Vec::with_capacity(POINT_LEN + NONCE_LEN + buf.len());
        out.extend_from_slice(point.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }
}

/// HKDF-SHA256 over the shared secret, salted with both public keys (so a key is bound to the
/// pair it was agreed between).
fn derive(shared: &[u8], ephemeral: &[u8], recipient: &[u8]) -> Option<LessSafeKey> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &[ephemeral, recipient].concat());
    let prk = salt.extract(shared);
    let okm = prk.expand(&[INFO], &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_their_key_only() {
        let key = OpeningKey::generate();
        let sealed = key
            .sealing_key()
            .seal(b"job-1/42", b"mako-tiru-pela-47")
            .unwrap();
        assert_eq!(
            key.open(b"job-1/42", &sealed).unwrap(),
            b"mako-tiru-pela-47"
        );
        // The plaintext is nowhere in the blob.
        assert!(!sealed.windows(4).any(|w| w == b"mako"));
        // Another key, another context, a flipped bit, a cut blob: nothing opens.
        assert!(OpeningKey::generate().open(b"job-1/42", &sealed).is_none());
        assert!(key.open(b"job-1/43", &sealed).is_none());
        let mut bent = sealed.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert!(key.open(b"job-1/42", &bent).is_none());
        assert!(key.open(b"job-1/42", &sealed[..40]).is_none());
        // Two seals of the same secret differ (fresh ephemeral key and nonce).
        let again = key
            .sealing_key()
            .seal(b"job-1/42", b"mako-tiru-pela-47")
            .unwrap();
        assert_ne!(sealed, again);
    }

    #[test]
    fn keys_survive_their_text_and_byte_forms() {
        let key = OpeningKey::generate();
        let text = key.to_text();
        assert_eq!(text.len(), 43);
        let back = OpeningKey::from_text(&text).unwrap();
        let public = SealingKey::from_bytes(&key.sealing_key().to_bytes()).unwrap();
        assert_eq!(public, back.sealing_key());
        let sealed = public.seal(b"c", b"secret").unwrap();
        assert_eq!(back.open(b"c", &sealed).unwrap(), b"secret");
        assert!(OpeningKey::from_text("not a key").is_none());
        assert!(SealingKey::from_bytes(&[2; 10]).is_none());
        assert_eq!(format!("{key:?}"), "OpeningKey(***)");
    }
}
