//! Signed channel lists: the application signs which channels a browser may
//! listen to, and until when; the browser connects to the server directly
//! with the token, and the server checks it. Made here, and only here, for
//! the gem and the server alike, so both agree byte for byte.
//!
//! A token is base64url (no padding) of
//!
//! ```text
//! version (1 byte, 1) | payload (MessagePack) | HMAC-SHA256(secret, version | payload)
//! ```
//!
//! where the payload is the array `[channels (binaries), expires_at (Unix
//! seconds), key_id (a string, or nil)]`. The key id is the application's
//! to use when it rotates secrets; the server accepts either of its two
//! secrets (current and previous) whatever it says.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

use crate::channel::Channel;

const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
/// Tokens longer than this are not even decoded (a stream's head is at
/// most 64 KiB anyway).
pub const MAX_TOKEN_LEN: usize = 48 * 1024;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub channels: Vec<Channel>,
    /// Unix time, in seconds, from which the token is refused and a stream
    /// opened with it ends.
    pub expires_at: u64,
    pub key_id: Option<String>,
}

/// Why a token was refused. The messages say what is wrong with the token,
/// never anything about the secret.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("expired token")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    channels: Vec<serde_bytes::ByteBuf>,
    expires_at: u64,
    key_id: Option<String>,
}

fn mac(secret: &[u8], signed: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(signed);
    mac
}

/// The token for `grant`, signed with `secret`.
pub fn sign(grant: &Grant, secret: &[u8]) -> String {
    let payload = Payload {
        channels: grant
            .channels
            .iter()
            .map(|c| serde_bytes::ByteBuf::from(c.to_vec()))
            .collect(),
        expires_at: grant.expires_at,
        key_id: grant.key_id.clone(),
    };
    let mut bytes = vec![VERSION];
    rmp_serde::encode::write(&mut bytes, &payload).expect("a Vec takes any payload");
    let signature = mac(secret, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&signature);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The grant of a token signed with one of `secrets`, valid at `now`
/// (Unix seconds). The signature is checked before the payload is read, in
/// constant time.
pub fn verify(token: &str, secrets: &[&[u8]], now: u64) -> Result<Grant, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    if bytes.len() < 1 + MAC_LEN || bytes[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    let (signed, signature) = bytes.split_at(bytes.len() - MAC_LEN);
    if !secrets
        .iter()
        .any(|secret| mac(secret, signed).verify_slice(signature).is_ok())
    {
        return Err(TokenError::BadSignature);
    }
    let payload: Payload =
        rmp_serde::from_slice(&signed[1..]).map_err(|_| TokenError::Malformed)?;
    if now >= payload.expires_at {
        return Err(TokenError::Expired);
    }
    Ok(Grant {
        channels: payload
            .channels
            .into_iter()
            .map(|c| Bytes::from(c.into_vec()))
            .collect(),
        expires_at: payload.expires_at,
        key_id: payload.key_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            channels: vec![Bytes::from("global"), Bytes::from_static(b"user:\xff")],
            expires_at: 2_000,
            key_id: Some("2026-12".into()),
        }
    }

    #[test]
    fn a_signed_grant_verifies_until_it_expires() {
        let token = sign(&grant(), b"secret");
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(verify(&token, &[b"secret"], 1_999), Ok(grant()));
        assert_eq!(
            verify(&token, &[b"secret"], 2_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn the_current_or_the_previous_secret_will_do() {
        let token = sign(&grant(), b"old");
        assert_eq!(verify(&token, &[b"new", b"old"], 0), Ok(grant()));
        assert_eq!(verify(&token, &[b"new"], 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn any_byte_changed_is_refused() {
        let token = sign(&grant(), b"secret");
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for at in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[at] ^= 0x01;
            let refused = verify(&URL_SAFE_NO_PAD.encode(&tampered), &[b"secret"], 0);
            assert!(refused.is_err(), "byte {at} changed went through");
        }
        let expired = Grant {
            expires_at: 5,
            ..grant()
        };
        assert_eq!(
            verify(&sign(&expired, b"secret"), &[b"secret"], 10),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "!!!", "AA", &"A".repeat(MAX_TOKEN_LEN + 4)] {
            assert_eq!(
                verify(token, &[b"secret"], 0),
                Err(TokenError::Malformed),
                "{token:.10}"
            );
        }
        // Signed, but not a payload.
        let mut bytes = vec![VERSION, 0xc1];
        let signature = mac(b"secret", &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&signature);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(verify(&token, &[b"secret"], 0), Err(TokenError::Malformed));
    }
}
