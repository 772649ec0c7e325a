//! Access state of a repository: the private flag, the capability tickets it issued (`lode
//! grant`), the revocations it knows (`lode revoke`, and those received from peers), the
//! capability this device holds for the dataset, and the signed head it publishes.
//!
//! Everything lives in the `config-v1` table: `private`, `cap` (this device's ticket),
//! `grant/<link id>` (issued tickets), `person/<key>` (the person a holder's card named),
//! `revocation/<id>` (signed revocations), `reader/<key>`
//! (age recipients of readers, from their identity cards) and `head` (the signed head).
//!
//! Heads are signed lazily: [`publish_head`] compares the refs and revocations with the stored
//! head and, when they changed and this device can sign (it holds the dataset key, or a ticket
//! with WRITE), signs the next sequence number. A peer that cannot sign (a mirror) publishes
//! the head it received, unchanged.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{self, get, is_private, list, put};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::graph::{closure, head_refs};
use crate::repo::Repo;
use crate::trust::{self, Bundle, Card, HeadBody, Revocation, Revoked, Rights, SignedHead, Target};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The capability ticket this device holds for the dataset, if any.
pub fn own_capability(repo: &Repo) -> Result<Option<Bundle>> {
    match get(repo, "cap")? {
        None => Ok(None),
        Some(b) => Ok(Some(Bundle::decode(&b)?)),
    }
}

/// Stores the capability ticket this device presents to peers. The caller holds the lock.
pub fn store_capability(repo: &Repo, cap: &Bundle) -> Result<()> {
    put(repo, &[("cap".into(), Some(cap.encode()))])
}

/// Who a grant is for: a bare device id, or an identity card (which also carries the age
/// recipient that restricted datasets encrypt to).
pub fn parse_audience(s: &str) -> Result<([u8; 32], Option<Card>)> {
    let s = s.trim();
    if s.starts_with("lodeid1") {
        let card: Card = s.parse()?;
        return Ok((card.body.key, Some(card)));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(s, &mut key).map_err(|_| {
        Error::Other(format!(
            "{s:?} is neither an identity card (lodeid1…) nor a device id (64 hex digits)"
        ))
    })?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| Error::Other(format!("{s:?} is not a valid device id")))?;
    Ok((key, None))
}

/// What `lode grant` asks for.
pub struct GrantOptions {
    pub rights: Rights,
    pub scope: Vec<String>,
    /// Seconds from now.
    pub expires_in: u64,
    pub depth: u8,
    pub note: String,
}

/// Issues a capability ticket to `audience` (a card or device id): a root link when this
/// user holds the dataset key, else a delegation from this device's own ticket (which must
/// allow GRANT and be at least as wide). Records it under `grant/`.
pub fn grant(
    repo: &Repo,
    audience: &str,
    opts: GrantOptions,
    hints: Vec<crate::ticket::Provider>,
) -> Result<Bundle> {
    let (aud, card) = parse_audience(audience)?;
    let dataset = repo.dataset_id()?;
    let ds = dataset.to_bytes();
    let scope = trust::normalize_scope(&opts.scope)?;
    let t = now();
    let grant = trust::Grant {
        audience: aud,
        rights: opts.rights,
        scope,
        not_before: t.saturating_sub(trust::CLOCK_SKEW),
        expires: t + opts.expires_in.max(1),
        max_depth: opts.depth,
        note: opts.note,
    };
    if is_private(repo)? {
        let reads = grant.rights.contains(Rights::READ) || grant.rights.contains(Rights::WRITE);
        if reads && card.is_none() {
            return Err(Error::Other(
                "a restricted dataset is encrypted to its readers: grant to the holder's identity card (`lode id --card` on their device), not to a bare device id".into(),
            ));
        }
        if !grant.scope.is_empty() {
            return Err(Error::Other(
                "path scopes do not apply to a restricted dataset (serving peers see only ciphertext); share the paths as a dataset of their own".into(),
            ));
        }
    }
    let _lock = repo.lock()?;
    let mut bundle = match repo.home().dataset_key(&dataset)? {
        Some(key) => trust::issue(&ds, &key, None, grant, t)?,
        None => {
            let own = own_capability(repo)?.ok_or_else(|| {
                Error::Other(
                    "this device neither owns the dataset nor holds a ticket that allows granting"
                        .into(),
                )
            })?;
            let key = repo.device_key()?;
            if own.leaf().body.audience != key.verifying_key().to_bytes() {
                return Err(Error::Other(
                    "the stored ticket belongs to another device".into(),
                ));
            }
            let mut g = grant;
            // A delegation cannot outlive its parent: clip rather than fail.
            g.expires = g.expires.min(own.leaf().body.expires);
            g.not_before = g.not_before.max(own.leaf().body.not_before);
            trust::issue(&ds, &key, Some(&own), g, t)?
        }
    };
    bundle.hints = hints;
    let id = hex::encode(bundle.leaf().id());
    let mut entries = vec![(format!("grant/{id}"), Some(bundle.encode()))];
    let reads = opts_reads(&bundle);
    if let Some(p) = card.as_ref().and_then(|c| c.person()) {
        // Who the holder's card says they are, for `lode grants` (a claim, not verified).
        let json = serde_json::to_vec(p).expect("a person encodes");
        entries.push((format!("person/{}", hex::encode(aud)), Some(json)));
    }
    if let (Some(card), true) = (card, reads) {
        entries.push((
            format!("reader/{}", hex::encode(aud)),
            Some(card.body.age.into_bytes()),
        ));
    }
    put(repo, &entries)?;
    Ok(bundle)
}

/// True when a ticket lets its holder read plaintext (READ or WRITE): only such holders get
/// the keys of a restricted dataset.
fn opts_reads(b: &Bundle) -> bool {
    let r = b.leaf().body.rights;
    r.contains(Rights::READ) || r.contains(Rights::WRITE)
}

/// True when this device can sign heads for the dataset: it holds the dataset key, or (for
/// a public dataset) a valid ticket with WRITE. Only such a peer accepts pushes.
pub fn can_sign(repo: &Repo) -> Result<bool> {
    let dataset = repo.dataset_id()?;
    if repo.home().dataset_key(&dataset)?.is_some() {
        return Ok(true);
    }
    if is_private(repo)? || stored_head(repo)?.is_some_and(|h| h.body.private) {
        return Ok(false);
    }
    let me = repo.device_key()?.verifying_key().to_bytes();
    let revoked = revoked_set(&revocations(repo)?);
    Ok(own_capability(repo)?.is_some_and(|c| {
        c.leaf().body.audience == me
            && trust::authorize(&c, &dataset.to_bytes(), &me, now(), &revoked)
                .is_ok_and(|cap| cap.rights.contains(Rights::WRITE))
    }))
}

/// The tickets this repository issued, by link id.
pub fn grants(repo: &Repo) -> Result<Vec<Bundle>> {
    list(repo, "grant/")?
        .into_iter()
        .map(|(_, b)| Ok(Bundle::decode(&b)?))
        .collect()
}

/// The people that grant holders' identity cards named, by device id (recorded when a
/// ticket was granted to a card that carries a person). A claim by the holder, signed with
/// their key: shown beside the key, never used in place of it.
pub fn holder_people(repo: &Repo) -> Result<BTreeMap<[u8; 32], crate::person::Person>> {
    let mut out = BTreeMap::new();
    for (k, v) in list(repo, "person/")? {
        let mut key = [0u8; 32];
        let person = serde_json::from_slice::<crate::person::Person>(&v)
            .ok()
            .filter(|p| p.check().is_ok());
        if let (true, Some(p)) = (hex::decode_to_slice(&k, &mut key).is_ok(), person) {
            out.insert(key, p);
        }
    }
    Ok(out)
}

/// The age recipients of the current readers, by device id: holders of an identity card
/// given at grant time whose ticket with READ or WRITE is still valid (not expired, not
/// revoked). A reader who drops out of this set stops getting new epoch keys.
pub fn reader_recipients(repo: &Repo) -> Result<BTreeMap<[u8; 32], String>> {
    let ds = repo.dataset_id()?.to_bytes();
    let revoked = revoked_set(&revocations(repo)?);
    let t = now();
    let valid: std::collections::HashSet<[u8; 32]> = grants(repo)?
        .iter()
        .filter(|b| opts_reads(b) && trust::verify_chain(b, &ds, t, &revoked).is_ok())
        .map(|b| b.leaf().body.audience)
        .collect();
    let mut out = BTreeMap::new();
    for (k, v) in list(repo, "reader/")? {
        let mut key = [0u8; 32];
        if hex::decode_to_slice(&k, &mut key).is_ok() && valid.contains(&key) {
            out.insert(key, String::from_utf8_lossy(&v).to_string());
        }
    }
    Ok(out)
}

/// The revocations this repository knows.
pub fn revocations(repo: &Repo) -> Result<Vec<Revocation>> {
    let ds = repo.dataset_id()?.to_bytes();
    list(repo, "revocation/")?
        .into_iter()
        .map(|(_, b)| Ok(Revocation::decode(&b, &ds)?))
        .collect()
}

/// The set a verifier consults.
pub fn revoked_set(revs: &[Revocation]) -> Revoked {
    Revoked {
        targets: revs.iter().map(|r| r.body.target).collect(),
    }
}

/// Stores revocations received from a peer (already verified). The caller holds the lock.
pub fn store_revocations(repo: &Repo, revs: &[Revocation]) -> Result<()> {
    let entries: Vec<(String, Option<Vec<u8>>)> = revs
        .iter()
        .map(|r| {
            (
                format!("revocation/{}", hex::encode(r.id())),
                Some(r.encode()),
            )
        })
        .collect();
    put(repo, &entries)
}

/// What `revoke` revoked.
#[derive(Debug, serde::Serialize)]
pub struct RevokeReport {
    /// `link` or `key`.
    pub kind: &'static str,
    pub target: String,
    /// Reader keys that lose access: the next commit is encrypted to a new epoch key.
    pub readers_removed: Vec<String>,
}

/// Revokes a ticket (given whole, or by link id or unique prefix of an issued one) or, with
/// `key`, every ticket issued to or by a device. Only the dataset owner signs revocations.
pub fn revoke(repo: &Repo, what: &str, key: bool, note: &str) -> Result<RevokeReport> {
    let dataset = repo.dataset_id()?;
    let ds = dataset.to_bytes();
    let owner = repo.home().dataset_key(&dataset)?.ok_or_else(|| {
        Error::Other("only the dataset owner (who holds the dataset key) can revoke".into())
    })?;
    let (target, holder) = if key {
        let (k, _) = parse_audience(what)?;
        (Target::Key(k), Some(k))
    } else if trust::is_capability(what) {
        let b: Bundle = what.parse()?;
        (Target::Link(b.leaf().id()), Some(b.leaf().body.audience))
    } else {
        let want = what.trim().to_ascii_lowercase();
        let matches: Vec<Bundle> = grants(repo)?
            .into_iter()
            .filter(|b| hex::encode(b.leaf().id()).starts_with(&want))
            .collect();
        match matches.len() {
            1 => (
                Target::Link(matches[0].leaf().id()),
                Some(matches[0].leaf().body.audience),
            ),
            0 => {
                return Err(Error::Other(format!(
                    "no issued ticket has id {what:?} (`lode grants` lists them)"
                )))
            }
            _ => return Err(Error::Other(format!("ticket id {what:?} is ambiguous"))),
        }
    };
    let rev = Revocation::sign(&ds, &owner, target, now(), note)?;
    let _lock = repo.lock()?;
    let mut entries = vec![(
        format!("revocation/{}", hex::encode(rev.id())),
        Some(rev.encode()),
    )];
    // A reader whose every ticket is now revoked leaves the keyring: new commits use a new
    // epoch key it does not get.
    let mut removed = Vec::new();
    if let Some(h) = holder {
        let mut revoked = revoked_set(&revocations(repo)?);
        revoked.targets.insert(target);
        let still = grants(repo)?.iter().any(|b| {
            b.leaf().body.audience == h && trust::verify_chain(b, &ds, now(), &revoked).is_ok()
        });
        if !still && reader_recipients(repo)?.contains_key(&h) {
            entries.push((format!("reader/{}", hex::encode(h)), None));
            removed.push(hex::encode(h));
        }
    }
    put(repo, &entries)?;
    let (kind, target) = match target {
        Target::Link(id) => ("link", hex::encode(id)),
        Target::Key(k) => ("key", hex::encode(k)),
    };
    Ok(RevokeReport {
        kind,
        target,
        readers_removed: removed,
    })
}

/// The signed head stored in this repository (published or received).
pub fn stored_head(repo: &Repo) -> Result<Option<SignedHead>> {
    let Some(bytes) = get(repo, "head")? else {
        return Ok(None);
    };
    let ds = repo.dataset_id()?.to_bytes();
    // Verified when it was received or signed; later revocations do not unmake it.
    Ok(Some(SignedHead::decode(
        &bytes,
        &ds,
        &Revoked::default(),
        None,
    )?))
}

/// Stores a head received from a peer when it is newer than the stored one. The caller holds
/// the lock and has verified it.
pub fn store_head(repo: &Repo, head: &SignedHead) -> Result<()> {
    if stored_head(repo)?.is_some_and(|h| h.body.seq >= head.body.seq) {
        return Ok(());
    }
    put(repo, &[("head".into(), Some(head.encode()))])
}

/// The objects a head publishes that `known` does not accept: the plaintext closure of its
/// refs, or for a restricted dataset the sealed envelope and its ciphertexts (never
/// plaintext).
pub fn published_closure(
    repo: &Repo,
    head: Option<&SignedHead>,
    known: &dyn Fn(&ObjectId) -> bool,
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
            .filter(|id| !known(id) && !dropped.contains(id))
            .collect());
    }
    let roots = head_refs(Some(h)).roots();
    Ok(closure(repo, &roots, known)?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !dropped.contains(id))
        .collect())
}

/// Returns the head to publish: the stored one when it still matches the refs and the
/// revocations, else a newly signed one (when this device can sign). `min_seq` lets a push
/// receipt move past the pusher's own sequence number.
pub fn publish_head(repo: &Repo, min_seq: u64) -> Result<Option<SignedHead>> {
    publish(repo, min_seq, None)
}

/// [`publish_head`]; `lock` is the writer lock once taken (everything is then read again).
fn publish(
    repo: &Repo,
    min_seq: u64,
    lock: Option<&crate::db::WriteLock>,
) -> Result<Option<SignedHead>> {
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
        // v2: envelopes of format 2 (padded); a head sealed as format 1 is sealed again.
        let mut h = blake3::Hasher::new_derive_key("lode seal-inputs v2");
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
    if lock.is_none() {
        // The lock is waited for with the database closed: its holder (an `add` or `commit`
        // of the owner while `lode serve` runs) may be waiting to open the database, and
        // holding both in the other order would make both time out. Under the lock, the
        // refs are read again: they may have moved meanwhile.
        repo.release_db();
        let lock = repo.lock()?;
        return publish(repo, min_seq, Some(&lock));
    }
    let (main, tags) = match seal_digest {
        Some(d) if sealed.is_none() => {
            let env = crate::ops::sealed::seal(repo, &reader_recipients(repo)?)?;
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
