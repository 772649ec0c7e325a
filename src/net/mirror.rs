//! Storage managers: `lode mirror add|list|remove`. A mirror is a `clone --mirror` of a
//! dataset kept under `$LODE_HOME/mirrors/DATASET-ID/`: it holds what the dataset publishes
//! (for a restricted dataset, ciphertext only, with a relay ticket), never checks out, and is
//! served by `lode serve --mirrors`, which also follows each dataset (`crate::daemon` runs
//! the rounds of [`follow_once`]; `lode mirror sync` runs one by hand).

use std::path::{Path, PathBuf};

use crate::catalog::{Notice, Tainted};
use crate::error::{Error, Result};
use crate::keys::Home;
use crate::net::endpoint::NetOptions;
use crate::net::fetch::{self, CloneOptions, FetchReport};
use crate::net::registry;
use crate::progress::Progress;
use crate::repo::{Repo, RepoOptions};
use crate::ticket::{RegistryTicket, Ticket};
use crate::trust::Bundle;

/// Where the mirrors of this user live.
pub fn mirrors_dir(home: &Home) -> PathBuf {
    home.dir().join("mirrors")
}

/// One mirror, as `lode mirror list` shows it.
#[derive(Debug, serde::Serialize)]
pub struct MirrorInfo {
    pub dataset: String,
    pub path: String,
    /// Sequence number of the signed head it holds and serves.
    pub seq: Option<u64>,
    pub restricted: bool,
    /// Bytes of its object store.
    pub bytes: u64,
    /// Endpoint ids (short) of the providers it follows.
    pub origin: Vec<String>,
    /// Its quota in bytes, if any.
    pub quota: Option<u64>,
    /// Objects dropped to stay within the quota.
    pub dropped: usize,
}

/// Starts mirroring the dataset of `ticket`: a `clone --mirror` under the mirrors directory.
pub async fn add(
    home: &Home,
    ticket: &Ticket,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<(Repo, FetchReport)> {
    if let Some(n) = obeyed(home)
        .into_iter()
        .find(|n| n.body.target == Tainted::Dataset(ticket.dataset))
    {
        return Err(Error::Other(format!(
            "dataset {} was taken down by registry {} (notice {}: {}); this user's mirrors obey it",
            hex::encode(ticket.dataset),
            crate::net::endpoint::peer_name(&n.body.registry),
            hex::encode(&n.id()[..8]),
            n.body.reason
        )));
    }
    let dir = mirrors_dir(home).join(hex::encode(ticket.dataset));
    if dir.join(".lode").is_dir() {
        let repo = Repo::discover(&dir, home.clone(), RepoOptions::default())?;
        if repo.main()?.is_some() || crate::ops::access::stored_head(&repo)?.is_some() {
            return Err(Error::Other(format!(
                "dataset {} is already mirrored in {}",
                hex::encode(ticket.dataset),
                dir.display()
            )));
        }
    }
    fetch::clone(
        &dir,
        home.clone(),
        RepoOptions::default(),
        ticket,
        CloneOptions {
            cap,
            mirror: true,
            ..Default::default()
        },
        opts,
        progress,
    )
    .await
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The mirror repositories (paths), sorted by dataset id.
pub fn paths(home: &Home) -> Result<Vec<PathBuf>> {
    let dir = mirrors_dir(home);
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("cannot read", &dir, e)),
    };
    for e in rd.flatten() {
        if e.path().join(".lode").is_dir() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Lists the mirrors.
pub fn list(home: &Home) -> Result<Vec<MirrorInfo>> {
    let mut out = Vec::new();
    for p in paths(home)? {
        let repo = Repo::discover(&p, home.clone(), RepoOptions::default())?;
        let head = crate::ops::access::stored_head(&repo)?;
        let origin = fetch::remote(&repo, "origin")
            .map(|t| {
                t.providers
                    .iter()
                    .map(|p| crate::net::endpoint::peer_name(&p.id))
                    .collect()
            })
            .unwrap_or_default();
        out.push(MirrorInfo {
            dataset: hex::encode(repo.dataset_id()?.to_bytes()),
            path: p.display().to_string(),
            seq: head.as_ref().map(|h| h.body.seq),
            restricted: head.is_some_and(|h| h.body.private),
            bytes: dir_bytes(&p.join(".lode").join("objects")),
            origin,
            quota: crate::config::quota(&repo)?,
            dropped: crate::config::dropped(&repo)?.len(),
        });
    }
    Ok(out)
}

/// Stops mirroring the dataset whose id starts with `prefix`: deletes its copy.
pub fn remove(home: &Home, prefix: &str) -> Result<String> {
    let want = prefix.trim().to_ascii_lowercase();
    let found: Vec<PathBuf> = paths(home)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&want))
        })
        .collect();
    match found.as_slice() {
        [p] => {
            let id = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            std::fs::remove_dir_all(p).map_err(|e| Error::io("cannot remove", p, e))?;
            Ok(id)
        }
        [] => Err(Error::Other(format!(
            "no mirror of a dataset {prefix:?} (`lode mirror list` shows them)"
        ))),
        _ => Err(Error::Other(format!("dataset id {prefix:?} is ambiguous"))),
    }
}

/// Parses a size like `50G`, `512M`, `10k` or `4096` (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let unit = unit.to_ascii_lowercase();
    let mult: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// An object a mirror dropped to stay within its quota.
#[derive(Debug, serde::Serialize)]
pub struct Dropped {
    pub id: String,
    pub bytes: u64,
    /// The newest commit that used it.
    pub last_used_by: String,
}

/// Keeps a mirror within its quota: blobs that neither the head's `main` nor a tag uses
/// are dropped, those whose newest use is oldest first, until the store fits. Commits and
/// trees stay (the history remains listable; other providers can serve the dropped files).
/// A restricted dataset's mirror cannot tell versions apart (it holds ciphertext only) and
/// drops nothing. Returns what was dropped.
pub fn enforce_quota(repo: &Repo) -> Result<Vec<Dropped>> {
    use crate::id::ObjectId;
    use std::collections::{HashMap, HashSet};
    let Some(quota) = crate::config::quota(repo)? else {
        return Ok(vec![]);
    };
    let _lock = repo.lock()?;
    let back: Vec<ObjectId> = crate::config::dropped(repo)?
        .into_iter()
        .filter(|id| repo.store().has(id))
        .collect();
    if !back.is_empty() {
        crate::config::set_dropped(repo, &[], &back)?;
    }
    let Some(head) = crate::ops::access::stored_head(repo)? else {
        return Ok(vec![]);
    };
    if head.body.private {
        return Ok(vec![]);
    }
    let mut total = dir_bytes(&repo.root().join(".lode").join("objects"));
    if total <= quota {
        return Ok(vec![]);
    }
    let roots = crate::ops::graph::head_refs(Some(&head)).roots();
    let mut keep: HashSet<ObjectId> = HashSet::new();
    for c in &roots {
        for e in repo.flatten_commit(Some(c))?.values() {
            keep.insert(e.id);
        }
    }
    // The newest use of every other blob, walking the whole history.
    let mut newest: HashMap<ObjectId, (i64, ObjectId)> = HashMap::new();
    let mut todo = roots;
    let mut seen = HashSet::new();
    while let Some(c) = todo.pop() {
        if !seen.insert(c) {
            continue;
        }
        let Ok(commit) = repo.read_commit(&c) else {
            continue;
        };
        for e in repo.flatten_commit(Some(&c))?.values() {
            if keep.contains(&e.id) {
                continue;
            }
            let slot = newest.entry(e.id).or_insert((commit.body.time, c));
            if commit.body.time > slot.0 {
                *slot = (commit.body.time, c);
            }
        }
        todo.extend(commit.body.parents.iter().copied());
    }
    let mut order: Vec<(i64, ObjectId, ObjectId)> =
        newest.into_iter().map(|(id, (t, c))| (t, id, c)).collect();
    order.sort();
    let mut dropped = Vec::new();
    let mut ids = Vec::new();
    // A file held in chunks frees the chunks that no other file held in chunks uses (the
    // quota counts each chunk once, as the disk does), never one that is a kept file itself.
    let mut refs = None;
    for (_, id, c) in order {
        if total <= quota {
            break;
        }
        if !repo.store().has(&id) {
            continue;
        }
        let freed = repo
            .store()
            .remove_file(&id, &mut refs, &|o| keep.contains(o))?;
        total = total.saturating_sub(freed);
        ids.push(id);
        dropped.push(Dropped {
            id: id.to_hex(),
            bytes: freed,
            last_used_by: c.to_hex(),
        });
    }
    crate::config::set_dropped(repo, &ids, &[])?;
    Ok(dropped)
}

/// What one mirror did in a round of following.
#[derive(Debug, serde::Serialize)]
pub struct Followed {
    pub dataset: String,
    #[serde(flatten)]
    pub fetched: FetchReport,
    pub dropped: Vec<Dropped>,
}

/// A dataset a volunteering storage manager adopted (`crate::net::volunteer`), or why an
/// adoption or its report failed.
#[derive(Debug, serde::Serialize)]
pub struct Adopted {
    /// Its id (hex); empty for a failure that concerns no one dataset.
    pub dataset: String,
    /// Its name at the registry.
    pub name: String,
    /// Bytes of its current version.
    pub bytes: u64,
    #[serde(skip)]
    pub result: std::result::Result<(), String>,
}

/// What one round of following did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Round {
    /// Taint notices handled this round (obeyed or ignored).
    pub notices: Vec<NoticeAction>,
    /// Datasets adopted this round by a volunteering storage manager (and failures).
    #[serde(skip)]
    pub adopted: Vec<Adopted>,
    /// Per mirror (dataset id): what following it did, or why it failed.
    #[serde(skip)]
    pub mirrors: Vec<(String, Result<Followed>)>,
}

/// One round of following: applies the taint notices of the followed registries, fetches
/// every mirror from its origin (never a tainted blob), then keeps it within its quota.
/// `after_notices` runs once the notices are applied (a server re-reads what it serves, so
/// that deleted data stops being served before the fetches of the round).
pub async fn follow_once(
    home: &Home,
    opts: &NetOptions,
    after_notices: &(dyn Fn() + Send + Sync),
) -> Round {
    let mut round = Round {
        notices: apply_notices(home, opts).await,
        ..Round::default()
    };
    if !round.notices.is_empty() {
        after_notices();
    }
    let Ok(paths) = paths(home) else {
        return round;
    };
    for p in paths {
        let id = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let res = match Repo::discover(&p, home.clone(), RepoOptions::default()) {
            Ok(repo) => {
                let fetched =
                    fetch::fetch(&repo, "origin", None, opts, &crate::progress::NoProgress).await;
                let r = fetched.and_then(|fetched| {
                    Ok(Followed {
                        dataset: id.clone(),
                        fetched,
                        dropped: enforce_quota(&repo)?,
                    })
                });
                repo.release_db();
                r
            }
            Err(e) => Err(e),
        };
        round.mirrors.push((id, res));
    }
    round
}

/// What a mirror did with one taint notice.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NoticeAction {
    /// The notice id (hex).
    pub notice: String,
    /// The key that signed it.
    pub signer: String,
    pub target: String,
    pub reason: String,
    /// Whether the mirrors obey it (signed by the registry they follow).
    pub obeyed: bool,
    /// What was done: the mirror removed, blobs deleted, or why it was ignored.
    pub action: String,
}

fn registries_path(home: &Home) -> PathBuf {
    mirrors_dir(home).join("registries")
}

/// The registries whose taint notices this user's mirrors obey.
pub fn followed(home: &Home) -> Vec<RegistryTicket> {
    registry::read_tickets(&registries_path(home))
}

/// Makes this user's mirrors obey the taint notices of `reg` (signed by its key). Returns
/// false when it was already followed.
pub fn follow_registry(home: &Home, reg: &RegistryTicket) -> Result<bool> {
    let mut all = followed(home);
    let new = !all.iter().any(|r| r.key() == reg.key());
    all.retain(|r| r.key() != reg.key());
    all.push(reg.clone());
    registry::write_tickets(&registries_path(home), &all)?;
    Ok(new)
}

/// Stops obeying the notices of the followed registry whose key (hex) starts with `prefix`;
/// returns its key. Notices obeyed so far stay obeyed (their evidence is kept).
pub fn unfollow_registry(home: &Home, prefix: &str) -> Result<String> {
    let want = prefix.trim().to_ascii_lowercase();
    let all = followed(home);
    let (gone, keep): (Vec<RegistryTicket>, Vec<RegistryTicket>) = all
        .into_iter()
        .partition(|r| hex::encode(r.key()).starts_with(&want) && !want.is_empty());
    let key = match gone.as_slice() {
        [r] => hex::encode(r.key()),
        [] => {
            return Err(Error::Other(format!(
                "no followed registry {prefix:?} (`lode mirror list` shows them)"
            )))
        }
        _ => return Err(Error::Other(format!("registry id {prefix:?} is ambiguous"))),
    };
    registry::write_tickets(&registries_path(home), &keep)?;
    Ok(key)
}

/// The notices this user's mirrors obey (kept under `mirrors/notices/`, for audit).
pub fn obeyed(home: &Home) -> Vec<Notice> {
    let Ok(rd) = std::fs::read_dir(mirrors_dir(home).join("notices")) else {
        return vec![];
    };
    rd.flatten()
        .filter(|e| e.path().extension().is_none())
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| Notice::decode(&b).ok())
        .collect()
}

fn describe(n: &Notice, obeyed: bool, action: String) -> NoticeAction {
    NoticeAction {
        notice: hex::encode(n.id()),
        signer: hex::encode(n.body.registry),
        target: n.body.target.to_string(),
        reason: n.body.reason.clone(),
        obeyed,
        action,
    }
}

/// Fetches the notices of every followed registry; records those signed by a followed
/// registry (a registry also lists its peers' notices: one followed registry may bring
/// another's) and those it ignores (each reported once; a notice ignored before is obeyed
/// once its signer is followed), then enforces every obeyed notice in one pass over the
/// mirrors, so that mirrors added since are bound too. A registry that cannot be reached is
/// retried next round.
pub async fn apply_notices(home: &Home, opts: &NetOptions) -> Vec<NoticeAction> {
    let mut out = Vec::new();
    let mut newly = Vec::new();
    let base = mirrors_dir(home);
    let regs = followed(home);
    let keys: Vec<[u8; 32]> = regs.iter().map(RegistryTicket::key).collect();
    for reg in &regs {
        let Ok(raw) = registry::notices_raw(reg, opts).await else {
            continue;
        };
        for bytes in raw {
            let id = hex::encode(blake3::hash(&bytes).as_bytes());
            let (kept, ignored) = (
                base.join("notices").join(&id),
                base.join("ignored").join(&id),
            );
            let verdict = match Notice::decode(&bytes) {
                Ok(n) => match n.check_signer(&keys) {
                    Ok(()) => Ok(n),
                    Err(e) => Err((Some(n), e)),
                },
                Err(e) => Err((None, e)),
            };
            let kept_ok = std::fs::read(&kept).is_ok_and(|b| Notice::decode(&b).is_ok());
            if kept_ok || (verdict.is_err() && ignored.exists()) {
                continue;
            }
            // Recorded atomically: a half-written record would hide the notice for good.
            match verdict {
                Ok(n) => {
                    let _ = registry::write_atomic(&kept, &bytes);
                    let _ = std::fs::remove_file(&ignored);
                    newly.push(n);
                }
                Err((decoded, why)) => {
                    let _ = registry::write_atomic(&ignored, &bytes);
                    let action = format!("ignored: {why}");
                    out.push(match decoded {
                        Some(n) => describe(&n, false, action),
                        None => NoticeAction {
                            notice: id,
                            signer: String::new(),
                            target: String::new(),
                            reason: String::new(),
                            obeyed: false,
                            action,
                        },
                    });
                }
            }
        }
    }
    let done = enforce(home, &obeyed(home));
    for n in &newly {
        if !done.iter().any(|a| a.notice == hex::encode(n.id())) {
            out.push(describe(n, true, "obeyed; nothing of it held here".into()));
        }
    }
    out.extend(done);
    out
}

/// Enforces the obeyed notices on every mirror, opening each at most once: removes a
/// tainted dataset's mirror, deletes tainted blobs from every mirror that holds them and
/// records them in every mirror (so they are never fetched again). Returns what it did.
fn enforce(home: &Home, notices: &[Notice]) -> Vec<NoticeAction> {
    let mut out = Vec::new();
    let Ok(paths) = paths(home) else { return out };
    let blobs: Vec<(&Notice, crate::id::ObjectId)> = (notices.iter())
        .filter_map(|n| match n.body.target {
            Tainted::Blob(b) => Some((n, crate::id::ObjectId(b))),
            Tainted::Dataset(_) => None,
        })
        .collect();
    for p in paths {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let short = name.get(..12).unwrap_or(&name).to_string();
        if let Some(n) = notices
            .iter()
            .find(|n| matches!(n.body.target, Tainted::Dataset(d) if hex::encode(d) == name))
        {
            let action = match std::fs::remove_dir_all(&p) {
                Ok(()) => format!("removed the mirror of dataset {name}"),
                Err(e) => format!("could not remove {}: {e}", p.display()),
            };
            out.push(describe(n, true, action));
            continue;
        }
        if blobs.is_empty() {
            continue;
        }
        let Ok(repo) = Repo::discover(&p, home.clone(), RepoOptions::default()) else {
            continue;
        };
        let r = (|| -> Result<Vec<(&Notice, crate::id::ObjectId)>> {
            let _lock = repo.lock()?;
            let already = crate::config::tainted(&repo)?;
            let new: Vec<_> = blobs
                .iter()
                .filter(|(_, id)| !already.contains(id))
                .collect();
            let mut held = Vec::new();
            let mut refs = None;
            for (n, id) in &new {
                if repo.store().has(id) {
                    // A file held in chunks goes with every chunk no other file uses.
                    repo.store().remove_file(id, &mut refs, &|_| false)?;
                    held.push((*n, *id));
                }
            }
            let ids: Vec<_> = new.iter().map(|(_, id)| *id).collect();
            crate::config::set_tainted(&repo, &ids)?;
            Ok(held)
        })();
        repo.release_db();
        match r {
            Ok(held) => out.extend(held.into_iter().map(|(n, id)| {
                describe(
                    n,
                    true,
                    format!("deleted blob {} from mirror {short}", &id.to_hex()[..12]),
                )
            })),
            Err(e) => out.extend(blobs.iter().map(|(n, _)| {
                describe(
                    n,
                    true,
                    format!("could not delete blob from mirror {short}: {e}"),
                )
            })),
        }
    }
    out
}
