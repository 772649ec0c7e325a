//! What this repository publishes: its signed head ([`publish_head`]) and the objects that
//! head reaches ([`published_closure`]), which `lode serve` offers. Heads are signed lazily:
//! [`publish_head`] compares the refs and revocations with the stored head and, when they
//! changed and this device can sign (it holds the dataset key, or a ticket with WRITE), signs
//! the next sequence number; a restricted dataset is sealed first. A peer that cannot sign (a
//! mirror) publishes the head it received, unchanged.

use std::collections::HashSet;

use crate::config::{self, get, is_private, put};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::access::{
    now, own_capability, reader_recipients, revocations, revoked_set, stored_head,
};
use crate::ops::graph::{closure, head_refs};
use crate::repo::Repo;
use crate::trust::{self, HeadBody, Revocation, Rights, SignedHead};

/// Returns the head to publish: the stored one when it still matches the refs and the
/// revocations, else a newly signed one (when this device can sign). `min_seq` lets a push
/// receipt move past the pusher's own sequence number.
pub fn publish_head(repo: &Repo, min_seq: u64) -> Result<Option<SignedHead>> {
    let dataset = repo.dataset_id()?;
    let ds = dataset.to_bytes();
    let stored = stored_head(repo)?;
    let revs = revocations(repo)?;
    let mut rev_ids: Vec<[u8; 32]> = revs.iter().map(Revocation::id).collect();
    rev_ids.sort();
    let main = repo.main()?.map(|c| c.0);
    let tags: Vec<(String, [u8; 32])> = repo
        .refs("tags/")?
        .into_iter()
        .map(|(n, id)| (n.trim_start_matches("tags/").to_string(), id.0))
        .collect();
    let private = is_private(repo)?;
    // A restricted dataset publishes a sealed envelope instead of its plaintext refs; the
    // envelope is made again only when the refs or the readers change.
    let seal_digest = if private {
        let mut h = blake3::Hasher::new_derive_key("lode seal-inputs v1");
        h.update(&postcard::to_stdvec(&(&main, &tags)).expect("encodes"));
        for (k, r) in reader_recipients(repo)? {
            h.update(&k);
            h.update(r.as_bytes());
        }
        Some(*h.finalize().as_bytes())
    } else {
        None
    };
    let sealed = match seal_digest {
        None => None,
        Some(d) => get(repo, "sealed")?.filter(|v| v.len() == 64 && v[..32] == d),
    };
    let (pub_main, pub_tags) = match (&seal_digest, &sealed) {
        (None, _) => (main, tags),
        (Some(_), Some(v)) => (
            Some(<[u8; 32]>::try_from(&v[32..]).expect("64 bytes")),
            vec![],
        ),
        (Some(_), None) => (None, vec![]), // to be sealed below
    };
    if let Some(h) = &stored {
        if (seal_digest.is_none() || sealed.is_some())
            && h.body.main == pub_main
            && h.body.tags == pub_tags
            && h.body.revocations == rev_ids
            && h.body.private == private
        {
            return Ok(stored);
        }
    }
    let (key, chain) = match repo.home().dataset_key(&dataset)? {
        Some(k) => (k, Vec::new()),
        None => {
            let device = repo.device_key()?;
            match own_capability(repo)? {
                Some(cap)
                    if cap.leaf().body.rights.contains(Rights::WRITE)
                        && cap.leaf().body.audience == device.verifying_key().to_bytes()
                        && trust::verify_chain(&cap, &ds, now(), &revoked_set(&revs)).is_ok() =>
                {
                    (device, cap.encode())
                }
                // Cannot sign: publish what was received.
                _ => return Ok(stored),
            }
        }
    };
    if private && key.verifying_key().to_bytes() != ds {
        // Only the owner seals (it knows the readers); a writer pushes to the owner instead.
        return Ok(stored);
    }
    let _lock = repo.lock()?;
    let (main, tags) = match seal_digest {
        Some(d) if sealed.is_none() => {
            let env = crate::ops::sealed::seal(repo)?;
            let mut v = d.to_vec();
            v.extend_from_slice(&env.0);
            put(repo, &[("sealed".into(), Some(v))])?;
            (Some(env.0), vec![])
        }
        _ => (pub_main, pub_tags),
    };
    // A pusher's sequence number moves ours on, but only by a bounded step (a hostile
    // writer must not be able to exhaust the counter).
    let have = stored.as_ref().map_or(0, |h| h.body.seq);
    let seq = have
        .max(min_seq.min(have.saturating_add(1 << 32)))
        .checked_add(1)
        .ok_or_else(|| Error::Other("head sequence number exhausted".into()))?;
    let head = SignedHead::sign(
        HeadBody {
            version: 1,
            dataset: ds,
            signer: key.verifying_key().to_bytes(),
            seq,
            main,
            tags,
            revocations: rev_ids,
            private,
            time: now(),
            chain,
        },
        &key,
    );
    put(repo, &[("head".into(), Some(head.encode()))])?;
    Ok(Some(head))
}

/// The objects a head publishes that are not in `known`: the plaintext closure of its refs,
/// or for a restricted dataset the sealed envelope and its ciphertexts (never plaintext).
pub fn published_closure(
    repo: &Repo,
    head: Option<&SignedHead>,
    known: &HashSet<ObjectId>,
) -> Result<Vec<ObjectId>> {
    let Some(h) = head else { return Ok(vec![]) };
    // A mirror serves what it still holds: not what it dropped to stay within its quota,
    // nor what a taint notice made it delete.
    let dropped = config::dropped(repo)?;
    if h.body.private {
        let Some(env_id) = h.body.main.map(ObjectId) else {
            return Ok(vec![]);
        };
        if !crate::ops::sealed::holds_ciphertext(repo)? {
            return Err(Error::Other(
                "this clone of a restricted dataset holds its plaintext, not its ciphertext: serve a `lode clone --mirror` copy instead".into(),
            ));
        }
        let env = crate::ops::sealed::read_envelope(repo, &env_id)?;
        return Ok(env
            .closure(env_id, 0)
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !known.contains(id) && !dropped.contains(id))
            .collect());
    }
    let roots = head_refs(Some(h)).roots();
    Ok(closure(repo, &roots, known)?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !dropped.contains(id))
        .collect())
}
