//! Signed heads: the refs a writer published, with a growing sequence number, and the
//! check that a writer of the dataset signed them.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::chain::{authorize, Bundle};
use super::error::{TResult, TrustError};
use super::revoke::Revoked;
use super::rights::Rights;
use super::signed::{Body, Signed, MAX_TEXT, VERSION};

/// Context of signed heads.
pub const HEAD_CONTEXT: &[u8] = b"lode/head/v1\0";
/// Most tags in a signed head.
pub const MAX_TAGS: usize = 1024;
/// Most revocations a head lists.
pub const MAX_REVOCATIONS: usize = 4096;

/// The signed part of a head: the refs a writer published, with a growing sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadBody {
    pub version: u8,
    pub dataset: [u8; 32],
    pub signer: [u8; 32],
    pub seq: u64,
    pub main: Option<[u8; 32]>,
    pub tags: Vec<(String, [u8; 32])>,
    /// Ids of every revocation known to the signer, sorted: whoever serves this head must
    /// serve these revocations with it.
    pub revocations: Vec<[u8; 32]>,
    /// A restricted dataset: mirrors serve it only to ticket holders.
    pub private: bool,
    pub time: u64,
    /// When the signer is not the dataset key: its capability ticket, which must hold WRITE.
    pub chain: Vec<u8>,
}

/// A signed head.
pub type SignedHead = Signed<HeadBody>;

impl Body for HeadBody {
    const WHAT: &'static str = "head";
    const CONTEXT: &'static [u8] = HEAD_CONTEXT;
    const SIGNER_AT: usize = 1 + 32;
}

impl SignedHead {
    /// Signs a head with `key` (the dataset key, or a writer whose ticket is in `chain`).
    pub fn sign(body: HeadBody, key: &SigningKey) -> SignedHead {
        Signed::seal(body, key)
    }

    /// Decodes a head of `dataset` and checks that a writer signed it: the dataset key, or a
    /// key whose ticket holds WRITE, is not revoked and is valid at `now` (a writer whose
    /// ticket expired cannot publish by backdating a head). `now = None` checks the ticket at
    /// the head's own time: for a head this repository already verified and stored.
    pub fn decode(
        bytes: &[u8],
        dataset: &[u8; 32],
        revoked: &Revoked,
        now: Option<u64>,
    ) -> TResult<SignedHead> {
        let head: SignedHead = Signed::open_bytes(bytes)?;
        let body = &head.body;
        if body.version != VERSION {
            return Err(TrustError::Malformed("head", "unknown version".into()));
        }
        if &body.dataset != dataset {
            return Err(TrustError::WrongDataset {
                got: hex::encode(body.dataset),
                want: hex::encode(dataset),
            });
        }
        if body.tags.len() > MAX_TAGS
            || body.tags.iter().any(|(n, _)| n.len() > MAX_TEXT)
            || body.revocations.len() > MAX_REVOCATIONS
        {
            return Err(TrustError::TooLarge("head"));
        }
        if !body.revocations.windows(2).all(|w| w[0] < w[1]) {
            return Err(TrustError::Malformed(
                "head",
                "revocation ids not sorted".into(),
            ));
        }
        if body.signer != *dataset {
            if body.chain.is_empty() {
                return Err(TrustError::NotWriter(hex::encode(body.signer)));
            }
            let bundle = Bundle::decode(&body.chain)?;
            let at = now.unwrap_or(body.time);
            let cap = authorize(&bundle, dataset, &body.signer, at, revoked)
                .map_err(|e| TrustError::NotWriter(e.to_string()))?;
            cap.require(Rights::WRITE, "write")
                .map_err(|e| TrustError::NotWriter(e.to_string()))?;
        } else if !body.chain.is_empty() {
            return Err(TrustError::Malformed(
                "head",
                "owner head carries a chain".into(),
            ));
        }
        Ok(head)
    }
}
