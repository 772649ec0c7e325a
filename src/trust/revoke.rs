//! Revocations: signed, irreversible withdrawals of a link or of every link of a key, and the
//! set of them a verifier knows.

use std::collections::HashSet;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::error::{TResult, TrustError};
use super::signed::{check_text, Body, Signed, VERSION};

/// Context of revocations.
pub const REVOKE_CONTEXT: &[u8] = b"lode/revoke/v1\0";

/// What a revocation revokes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// One link (and every link delegated from it).
    Link([u8; 32]),
    /// Every link issued to or by a key.
    Key([u8; 32]),
}

/// The set of revoked links and keys a verifier knows.
#[derive(Clone, Debug, Default)]
pub struct Revoked {
    pub targets: HashSet<Target>,
}

impl Revoked {
    /// True when `t` is revoked.
    pub fn contains(&self, t: &Target) -> bool {
        self.targets.contains(t)
    }
}

/// The signed part of a revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationBody {
    pub version: u8,
    pub dataset: [u8; 32],
    pub revoker: [u8; 32],
    pub target: Target,
    pub time: u64,
    pub note: String,
}

/// A signed, irreversible revocation.
pub type Revocation = Signed<RevocationBody>;

impl Body for RevocationBody {
    const WHAT: &'static str = "revocation";
    const CONTEXT: &'static [u8] = REVOKE_CONTEXT;
    const SIGNER_AT: usize = 1 + 32;
    const ID_KEY: Option<&'static str> = Some("lode revocation-id v1");
}

impl Revocation {
    /// Signs a revocation of `target` with `key` (the dataset key).
    pub fn sign(
        dataset: &[u8; 32],
        key: &SigningKey,
        target: Target,
        time: u64,
        note: &str,
    ) -> TResult<Revocation> {
        check_text("note", note)?;
        let body = RevocationBody {
            version: VERSION,
            dataset: *dataset,
            revoker: key.verifying_key().to_bytes(),
            target,
            time,
            note: note.to_string(),
        };
        Ok(Signed::seal(body, key))
    }

    /// Decodes and checks a revocation of `dataset`: signed by the dataset owner.
    pub fn decode(bytes: &[u8], dataset: &[u8; 32]) -> TResult<Revocation> {
        let r: Revocation = Signed::open_bytes(bytes)?;
        let body = &r.body;
        if body.version != VERSION {
            return Err(TrustError::Malformed(
                "revocation",
                "unknown version".into(),
            ));
        }
        check_text("note", &body.note)?;
        if &body.dataset != dataset {
            return Err(TrustError::WrongDataset {
                got: hex::encode(body.dataset),
                want: hex::encode(dataset),
            });
        }
        if body.revoker != *dataset {
            return Err(TrustError::NotRevoker);
        }
        Ok(r)
    }
}
