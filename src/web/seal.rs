//! Secrets that must cross a redirect (the passwords a form just made, an API reply replayed
//! for a retry) without being stored readable: sealed with ChaCha20-Poly1305 under a key
//! derived (HMAC-SHA-256) from a secret only the client holds — the session cookie, or the API
//! token — which the database keeps only as a SHA-256. A dump of the tables opens nothing.
use hmac::{Hmac, Mac};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::Sha256;

/// The key for `context` (a form id, an idempotency key) under the client's `secret`.
fn key(secret: &str, context: &str) -> LessSafeKey {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"hubdesk seal\0");
    mac.update(context.as_bytes());
    let bytes = mac.finalize().into_bytes();
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &bytes).expect("a 32-byte key"))
}

/// `nonce ‖ ciphertext ‖ tag`; the context is bound as associated data too.
pub fn seal(secret: &str, context: &str, plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut buf = plain.to_vec();
    key(secret, context)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut buf,
        )
        .expect("ChaCha20-Poly1305 seals any length hubdesk stores");
    [nonce.as_slice(), &buf].concat()
}

/// The plain text, or `None` when another secret or context sealed it (or it was altered).
pub fn open(secret: &str, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = body.to_vec();
    let plain = key(secret, context)
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_secret_and_context() {
        let sealed = seal("cookie-a", "form-1", b"baku-midi-seta-47");
        assert!(!sealed
            .windows(b"baku".len())
            .any(|w| w == b"baku".as_slice()));
        assert_eq!(
            open("cookie-a", "form-1", &sealed).as_deref(),
            Some(b"baku-midi-seta-47".as_slice())
        );
        assert_eq!(open("cookie-b", "form-1", &sealed), None);
        assert_eq!(open("cookie-a", "form-2", &sealed), None);
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open("cookie-a", "form-1", &altered), None);
        assert_eq!(open("cookie-a", "form-1", b"short"), None);
    }
}
