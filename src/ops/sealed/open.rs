//! Opening a sealed head: the keyring and manifest read with this device's age identity,
//! and the missing plaintext decrypted from its ciphertexts.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::Repo;

use super::cipher::{decrypt_bytes, decrypt_object};
use super::envelope::{Envelope, Manifest};
use super::keyring::{config_put, epoch_key, Keyring};

/// Opens a sealed head with this device's age identity: learns the epoch secrets from the
/// keyring and decrypts the manifest (the plaintext refs and the plaintext -> ciphertext
/// map). Needs the keyring and manifest objects locally. Returns the manifest and the epoch
/// identities.
pub fn read_manifest(
    repo: &Repo,
    env: &Envelope,
) -> Result<(Manifest, Vec<age::x25519::Identity>)> {
    let me = repo.home().age_identity()?;
    let ring = decrypt_bytes(repo, &env.keyring, std::slice::from_ref(&me), env.padded).map_err(|_| {
        Error::Other(
            "this device is not among the dataset's readers: it cannot decrypt the keyring (send `lode id --card` to the owner, who grants with it)".into(),
        )
    })?;
    let ring = Zeroizing::new(ring);
    let ring: Keyring =
        postcard::from_bytes(&ring).map_err(|e| Error::Other(format!("malformed keyring: {e}")))?;
    let mut ids = Vec::new();
    let mut learnt = Vec::new();
    for (n, secret) in &ring.epochs {
        let secret = Zeroizing::new(secret.clone());
        if let Ok(id) = age::x25519::Identity::from_str(&secret) {
            ids.push(id);
            learnt.push((epoch_key(*n), secret.as_bytes().to_vec()));
        }
    }
    let manifest_bytes = decrypt_bytes(repo, &env.manifest, &ids, env.padded).map_err(|_| {
        Error::Other(format!(
            "cannot decrypt the manifest of epoch {}: this device was removed from the readers (revoked)",
            env.epoch
        ))
    })?;
    let manifest: Manifest = postcard::from_bytes(&manifest_bytes)
        .map_err(|e| Error::Other(format!("malformed manifest: {e}")))?;
    let listed: HashSet<ObjectId> = env.objects.iter().map(|(id, _)| *id).collect();
    if let Some((_, (c, _))) = manifest.map.iter().find(|(_, (c, _))| !listed.contains(c)) {
        return Err(Error::Other(format!(
            "the manifest names ciphertext {} that the signed envelope does not list",
            c.short()
        )));
    }
    config_put(repo, &learnt)?;
    Ok((manifest, ids))
}

/// The ciphertexts (with sizes) whose plaintext this repository lacks.
pub fn needed(repo: &Repo, env: &Envelope, manifest: &Manifest) -> Vec<(ObjectId, u64)> {
    let sizes: BTreeMap<ObjectId, u64> = env.objects.iter().copied().collect();
    let mut out: Vec<(ObjectId, u64)> = manifest
        .map
        .iter()
        .filter(|(p, _)| !repo.store().has(p))
        .map(|(_, (c, _))| (*c, sizes.get(c).copied().unwrap_or(0)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Decrypts every ciphertext whose plaintext is missing (two objects at a time), then, unless
/// `keep`, deletes the ciphertexts (a reader keeps plaintext only; a mirror keeps ciphertext
/// only; the keyring and manifest stay). `padded` is the envelope's format.
pub fn decrypt_missing(
    repo: &Repo,
    manifest: &Manifest,
    ids: &[age::x25519::Identity],
    keep: bool,
    padded: bool,
) -> Result<()> {
    let work: Vec<(ObjectId, ObjectId)> = manifest
        .map
        .iter()
        .filter(|(p, _)| !repo.store().has(p))
        .map(|(p, (c, _))| (*p, *c))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((plain, cipher)) = work.get(i) else {
                            return Ok(());
                        };
                        if !repo.store().has(plain) {
                            decrypt_object(repo, cipher, plain, ids, padded)?;
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Other("decryption worker failed".into())))
            })
            .collect()
    });
    results.into_iter().collect::<Result<()>>()?;
    if !keep {
        for (_, cipher) in &work {
            let _ = repo.store().remove(cipher);
        }
    }
    Ok(())
}

/// Opens a sealed head whose every ciphertext is local: [`read_manifest`], then
/// [`decrypt_missing`] (keeping the ciphertexts).
pub fn open(repo: &Repo, env: &Envelope) -> Result<Manifest> {
    let (manifest, ids) = read_manifest(repo, env)?;
    decrypt_missing(repo, &manifest, &ids, true, env.padded)?;
    repo.store().sync()?;
    Ok(manifest)
}
