//! Sealing: what the owner publishes for a restricted head (new epochs, ciphertexts of the
//! closure, keyring, manifest, envelope).

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::Repo;

use super::cipher::{encrypt_bytes, encrypt_object};
use super::envelope::{Envelope, Manifest};
use super::keyring::{config_get, config_put, epoch_key, epoch_secrets, Keyring};

/// Seals the current refs of a restricted dataset for publishing: encrypts what has no
/// ciphertext yet, writes the keyring (to the current `readers`, from
/// `ops::access::reader_recipients`, and this device), the manifest and the envelope; opens
/// a new epoch when a reader was removed since the last one. Returns the envelope id. The
/// caller holds the writer lock.
pub fn seal(repo: &Repo, readers: &BTreeMap<[u8; 32], String>) -> Result<ObjectId> {
    let dataset = repo.dataset_id()?.to_bytes();
    let reader_keys: Vec<u8> = readers.keys().flatten().copied().collect();
    let mut secrets = epoch_secrets(repo)?;
    let current =
        config_get(repo, "epoch")?.and_then(|v| v.try_into().ok().map(u32::from_be_bytes));
    // A new epoch when there is none, or when someone of the current epoch's readers is gone.
    let need_new = match current {
        None => true,
        Some(n) => {
            let was = config_get(repo, &format!("epoch-readers/{n:08}"))?.unwrap_or_default();
            was.chunks(32)
                .any(|k| !readers.contains_key(&<[u8; 32]>::try_from(k).unwrap_or_default()))
                || !secrets.contains_key(&n)
        }
    };
    let epoch = if need_new {
        let n = current.map_or(0, |n| n + 1);
        let id = age::x25519::Identity::generate();
        config_put(
            repo,
            &[
                (
                    epoch_key(n),
                    id.to_string().expose_secret().as_bytes().to_vec(),
                ),
                ("epoch".into(), n.to_be_bytes().to_vec()),
                (format!("epoch-readers/{n:08}"), reader_keys.clone()),
            ],
        )?;
        secrets.insert(n, id);
        n
    } else {
        // Everyone who ever got this epoch's key is remembered, so that removing any of them
        // opens the next epoch.
        let n = current.unwrap_or(0);
        let key = format!("epoch-readers/{n:08}");
        let mut was: Vec<[u8; 32]> = config_get(repo, &key)?
            .unwrap_or_default()
            .chunks(32)
            .filter_map(|k| k.try_into().ok())
            .collect();
        was.extend(readers.keys().copied());
        was.sort();
        was.dedup();
        config_put(repo, &[(key, was.concat())])?;
        n
    };
    let recipient = secrets[&epoch].to_public();

    // Every plaintext object of the refs' closure, encrypted once.
    let main = repo.main()?;
    let tags: Vec<(String, ObjectId)> = repo
        .refs("tags/")?
        .into_iter()
        .map(|(n, id)| (n.trim_start_matches("tags/").to_string(), id))
        .collect();
    let roots: Vec<ObjectId> = main
        .iter()
        .copied()
        .chain(tags.iter().map(|(_, id)| *id))
        .collect();
    let plain = crate::ops::graph::file_closure(repo, &roots, &crate::ops::graph::nothing_known)?;
    let mut manifest = Manifest {
        main,
        tags,
        map: BTreeMap::new(),
    };
    let mut new_entries = Vec::new();
    for (p, _) in &plain {
        // `cipher2/`: padded ciphertexts. Those of format 1 (`cipher/`, unpadded) are not
        // reused: every object is sealed again, padded, once.
        let key = format!("cipher2/{}", p.to_hex());
        let known = config_get(repo, &key)?.and_then(|v| {
            let id: [u8; 32] = v.get(..32)?.try_into().ok()?;
            let ep: [u8; 4] = v.get(32..36)?.try_into().ok()?;
            Some((ObjectId(id), u32::from_be_bytes(ep)))
        });
        let entry = match known {
            Some((c, ep)) if repo.store().has(&c) => (c, ep),
            _ => {
                let c = encrypt_object(repo, p, &recipient)?;
                let mut v = c.0.to_vec();
                v.extend(epoch.to_be_bytes());
                new_entries.push((key, v));
                (c, epoch)
            }
        };
        manifest.map.insert(*p, entry);
    }
    // Keyring: every epoch's secret, to every current reader and to this device.
    let mut recipients: Vec<age::x25519::Recipient> = readers
        .values()
        .filter_map(|r| age::x25519::Recipient::from_str(r).ok())
        .collect();
    recipients.push(repo.home().age_identity()?.to_public());
    let ring = Keyring {
        epochs: secrets
            .iter()
            .map(|(n, id)| (*n, id.to_string().expose_secret().to_string()))
            .collect(),
    };
    let ring_plain = Zeroizing::new(postcard::to_stdvec(&ring).expect("encodes"));
    let keyring = repo
        .store()
        .put_bytes(&encrypt_bytes(&ring_plain, &recipients)?)?;
    let manifest_id = repo.store().put_bytes(&encrypt_bytes(
        &postcard::to_stdvec(&manifest).expect("encodes"),
        std::slice::from_ref(&recipient),
    )?)?;
    let mut objects: Vec<(ObjectId, u64)> = Vec::new();
    let mut seen = HashSet::new();
    for id in [keyring, manifest_id]
        .into_iter()
        .chain(manifest.map.values().map(|(c, _)| *c))
    {
        if seen.insert(id) {
            let size = repo.store().size_of(&id)?;
            objects.push((id, size));
        }
    }
    let env = Envelope {
        dataset,
        epoch,
        keyring,
        manifest: manifest_id,
        objects,
        padded: true,
    };
    let id = repo.store().put_bytes(&env.encode())?;
    repo.store().sync()?;
    config_put(repo, &new_entries)?;
    Ok(id)
}

/// True when this repository holds every ciphertext of a sealed head (the owner, who seals,
/// and mirrors); a reader's clone keeps the plaintext only.
pub fn holds_ciphertext(repo: &Repo) -> Result<bool> {
    Ok(crate::config::is_mirror(repo)? || repo.home().dataset_key(&repo.dataset_id()?)?.is_some())
}
