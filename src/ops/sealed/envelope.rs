//! The envelope (the public part of a restricted head: what to fetch, where the keys are)
//! and the manifest (its encrypted part: the plaintext refs and the plaintext → ciphertext
//! map).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::MAX_OBJECT_META_SIZE;
use crate::repo::Repo;

/// Envelopes whose ciphertexts hold the plaintext as it is (format 1: still read).
const ENVELOPE_MAGIC_V1: &[u8; 5] = b"LODE\x01";
/// Envelopes whose ciphertexts hold the plaintext padded (format 2: what `seal` writes).
const ENVELOPE_MAGIC: &[u8; 5] = b"LODE\x02";
/// Most ciphertext objects one envelope lists.
const MAX_ENVELOPE_OBJECTS: usize = 4 << 20;

/// The public part of a restricted head: what to fetch, and where the keys are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub dataset: [u8; 32],
    /// The epoch of the manifest's key.
    pub epoch: u32,
    pub keyring: ObjectId,
    pub manifest: ObjectId,
    /// Every ciphertext object of the closure, with its size.
    pub objects: Vec<(ObjectId, u64)>,
    /// Whether every ciphertext it names holds a padded plaintext ([`pad_len`]): true for
    /// the envelopes this build seals (magic `LODE` 2), false for format 1 ones (`LODE` 1).
    #[serde(skip)]
    pub padded: bool,
}

impl Envelope {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let magic = if self.padded {
            ENVELOPE_MAGIC
        } else {
            ENVELOPE_MAGIC_V1
        };
        let mut v = magic.to_vec();
        v.extend(postcard::to_stdvec(self).expect("encodes"));
        v
    }

    /// Decodes strictly (magic, no trailing bytes, canonical, bounded).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Envelope, String> {
        let (body, padded) = match bytes.strip_prefix(&ENVELOPE_MAGIC[..]) {
            Some(b) => (b, true),
            None => (
                bytes
                    .strip_prefix(&ENVELOPE_MAGIC_V1[..])
                    .ok_or("not an envelope object (or a newer format: upgrade lode)")?,
                false,
            ),
        };
        let (mut env, rest): (Envelope, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| format!("malformed envelope: {e}"))?;
        env.padded = padded;
        if !rest.is_empty() || env.encode() != bytes {
            return Err("non-canonical envelope".into());
        }
        if env.objects.len() > MAX_ENVELOPE_OBJECTS {
            return Err("envelope too large".into());
        }
        Ok(env)
    }

    /// Every object a mirror holds for this envelope, with sizes (the envelope itself first).
    pub fn closure(&self, id: ObjectId, size: u64) -> Vec<(ObjectId, u64)> {
        let mut v = vec![(id, size)];
        v.extend(self.objects.iter().copied());
        v
    }
}

/// The encrypted part of a restricted head.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub main: Option<ObjectId>,
    pub tags: Vec<(String, ObjectId)>,
    /// plaintext id -> (ciphertext id, epoch), for every object of the closure.
    pub map: BTreeMap<ObjectId, (ObjectId, u32)>,
}

/// Reads a stored envelope.
pub fn read_envelope(repo: &Repo, id: &ObjectId) -> Result<Envelope> {
    let bytes = repo.store().read_verified(id, MAX_OBJECT_META_SIZE)?;
    Envelope::decode(&bytes).map_err(|msg| Error::BadObject {
        id: *id,
        what: "envelope",
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_formats() {
        let mut env = Envelope {
            dataset: [1; 32],
            epoch: 3,
            keyring: ObjectId([2; 32]),
            manifest: ObjectId([3; 32]),
            objects: vec![(ObjectId([4; 32]), 5)],
            padded: true,
        };
        let v2 = env.encode();
        assert!(v2.starts_with(b"LODE\x02"));
        assert_eq!(Envelope::decode(&v2).unwrap(), env);
        env.padded = false;
        let v1 = env.encode();
        assert!(v1.starts_with(b"LODE\x01"));
        assert_eq!(v1[5..], v2[5..]);
        let back = Envelope::decode(&v1).unwrap();
        assert!(!back.padded);
        let mut v3 = v2.clone();
        v3[4] = 3;
        assert!(Envelope::decode(&v3).unwrap_err().contains("upgrade lode"));
    }
}
