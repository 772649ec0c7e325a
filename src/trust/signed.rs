//! The one signed-object encoding, shared by `trust` and `catalog`.
//!
//! Every signed object is `payload ‖ signature`, where `payload` is the postcard encoding of
//! its body, starting with a version byte and with the signer's 32-byte key at a fixed offset,
//! and the signature is ed25519 (`verify_strict`) over `CONTEXT ‖ payload` with a context
//! string of its own per object type, so a signature of one type can never be replayed as
//! another. Decoding is strict: the signature is checked over the received bytes first, then
//! the payload is decoded with size limits and must re-encode to the same bytes (one
//! canonical encoding), with nothing trailing.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{TResult, TrustError};

/// The version byte of version-1 bodies.
pub(crate) const VERSION: u8 = 1;
/// Largest signed head or revocation.
pub const MAX_SIGNED: usize = 256 * 1024;
/// Largest encoded capability bundle.
pub const MAX_BUNDLE: usize = 16 * 1024;
/// Longest note, path prefix or tag name, in bytes.
pub const MAX_TEXT: usize = 256;

/// The body of a signed object: what it is called in errors, the context its signatures
/// carry, where the signer's key lies in its payload, and how its id is made.
pub trait Body: Serialize + DeserializeOwned + fmt::Debug {
    /// The object's name in errors ("ticket", "head", "registry entry"…).
    const WHAT: &'static str;
    /// The signature context (`lode/…/vN\0`).
    const CONTEXT: &'static [u8];
    /// Offset of the signer's key in the payload (the version byte comes first).
    const SIGNER_AT: usize;
    /// `Some(key)`: the id is BLAKE3 `derive_key(key, payload)`, the same for every signature
    /// over one payload; `None`: the id is the BLAKE3 hash of the canonical bytes.
    const ID_KEY: Option<&'static str> = None;

    /// How a signed object of this kind is `Debug`-formatted (by default, its body).
    fn fmt_signed(signed: &Signed<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("body", &signed.body)
            .finish_non_exhaustive()
    }
}

/// A signed object: the decoded body and the exact bytes that were signed.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<B> {
    pub body: B,
    payload: Vec<u8>,
    sig: [u8; 64],
}

impl<B: Body> fmt::Debug for Signed<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        B::fmt_signed(self, f)
    }
}

impl<B> Signed<B> {
    /// The canonical bytes: payload then signature.
    pub fn encode(&self) -> Vec<u8> {
        [&self.payload[..], &self.sig[..]].concat()
    }

    /// The signed bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }
}

impl<B: Body> Signed<B> {
    /// The object's id (see [`Body::ID_KEY`]).
    pub fn id(&self) -> [u8; 32] {
        match B::ID_KEY {
            Some(key) => blake3::derive_key(key, &self.payload),
            None => *blake3::hash(&self.encode()).as_bytes(),
        }
    }

    /// Encodes `body` and signs it with `key` (the caller has checked the body).
    pub(crate) fn seal(body: B, key: &SigningKey) -> Signed<B> {
        let (payload, sig) = sign_payload(B::CONTEXT, &body, key);
        Signed { body, payload, sig }
    }

    /// Reads an object from its payload and signature: the signature first, then strict
    /// decoding (the caller checks the body's own rules).
    pub(crate) fn open_parts(payload: &[u8], sig: &[u8]) -> TResult<Signed<B>> {
        let (body, sig) = open_payload(B::WHAT, B::CONTEXT, payload, sig, B::SIGNER_AT)?;
        Ok(Signed {
            body,
            payload: payload.to_vec(),
            sig,
        })
    }

    /// Reads an object from its canonical bytes (`payload ‖ signature`).
    pub(crate) fn open_bytes(bytes: &[u8]) -> TResult<Signed<B>> {
        if bytes.len() < 64 {
            return Err(TrustError::Malformed(B::WHAT, "truncated".into()));
        }
        let (payload, sig) = bytes.split_at(bytes.len() - 64);
        Signed::open_parts(payload, sig)
    }
}

/// Encodes, signs `CONTEXT ‖ payload`.
pub(crate) fn sign_payload<T: Serialize>(
    context: &[u8],
    body: &T,
    key: &SigningKey,
) -> (Vec<u8>, [u8; 64]) {
    let payload = postcard::to_stdvec(body).expect("in-memory values encode");
    let sig = key.sign(&[context, &payload].concat()).to_bytes();
    (payload, sig)
}

/// Verifies the signature of `signer` over the received bytes, then decodes strictly.
fn open_payload<T: Serialize + for<'a> Deserialize<'a>>(
    what: &'static str,
    context: &[u8],
    payload: &[u8],
    sig: &[u8],
    signer_at: usize,
) -> TResult<(T, [u8; 64])> {
    if payload.len() > MAX_SIGNED {
        return Err(TrustError::TooLarge(what));
    }
    let signer: [u8; 32] = payload
        .get(signer_at..signer_at + 32)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| TrustError::Malformed(what, "truncated".into()))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| TrustError::Malformed(what, "signature is not 64 bytes".into()))?;
    let key = VerifyingKey::from_bytes(&signer)
        .map_err(|_| TrustError::Malformed(what, "invalid signer key".into()))?;
    key.verify_strict(&[context, payload].concat(), &Signature::from_bytes(&sig))
        .map_err(|_| TrustError::BadSignature(what.to_string()))?;
    let (body, rest): (T, &[u8]) = postcard::take_from_bytes(payload)
        .map_err(|e| TrustError::Malformed(what, e.to_string()))?;
    if !rest.is_empty() {
        return Err(TrustError::Malformed(what, "trailing bytes".into()));
    }
    if postcard::to_stdvec(&body).expect("encodes") != payload {
        return Err(TrustError::NonCanonical(what));
    }
    Ok((body, sig))
}

/// Fails when a note or other text is longer than [`MAX_TEXT`].
pub(crate) fn check_text(what: &'static str, s: &str) -> TResult<()> {
    if s.len() > MAX_TEXT {
        return Err(TrustError::TooLarge(what));
    }
    Ok(())
}

/// The bytes of a text form `PREFIX` + lowercase base32 (tickets, identity cards).
pub(crate) fn decode_text(prefix: &str, what: &'static str, s: &str) -> TResult<Vec<u8>> {
    let body = s
        .trim()
        .strip_prefix(prefix)
        .ok_or_else(|| TrustError::Malformed(what, format!("does not start with {prefix:?}")))?;
    if body.len() > MAX_BUNDLE * 2 {
        return Err(TrustError::TooLarge(what));
    }
    data_encoding::BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .map_err(|_| TrustError::Malformed(what, "not valid base32 (cut while copying?)".into()))
}

/// The text form of `bytes`: `PREFIX` + lowercase base32.
pub(crate) fn encode_text(prefix: &str, bytes: &[u8]) -> String {
    let text = data_encoding::BASE32_NOPAD.encode(bytes);
    format!("{prefix}{}", text.to_ascii_lowercase())
}
