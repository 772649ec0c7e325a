//! `verify` (re-hash every object, check reachability and signatures) and `gc` (delete what
//! no ref and no index entry reaches).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::leftover::Leftover;
use crate::object::EntryKind;
use crate::progress::Progress;
use crate::repo::Repo;

/// A damaged object, with a dataset path that uses it when one is known.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damaged {
    pub id: String,
    pub path: Option<String>,
    pub problem: String,
}

/// What `verify` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub objects: u64,
    pub bytes: u64,
    pub damaged: Vec<Damaged>,
    /// In a lazy clone: file contents reachable but not fetched (`lode get PATH` fetches
    /// them); not damage.
    pub absent: u64,
}

/// Objects reachable from refs and the index, each with the first path that names it.
struct Reach {
    objects: HashMap<ObjectId, Option<String>>,
    problems: Vec<Damaged>,
    /// File content (not commits, trees or symlink targets) reachable.
    blobs: HashSet<ObjectId>,
    /// In a lazy clone: the file content reachable but not fetched.
    absent: u64,
    /// Files large enough to be held in chunks, with a path that names them.
    big: Vec<(ObjectId, Option<String>)>,
}

fn reachable(repo: &Repo) -> Result<Reach> {
    let mut r = Reach {
        objects: HashMap::new(),
        problems: Vec::new(),
        blobs: HashSet::new(),
        absent: 0,
        big: Vec::new(),
    };
    let mut commits: Vec<ObjectId> = Vec::new();
    for prefix in ["heads/", "tags/"] {
        commits.extend(repo.refs(prefix)?.into_iter().map(|(_, id)| id));
    }
    if let Some(c) = repo.head()?.commit {
        commits.push(c);
    }
    // What a restricted dataset publishes (sealed envelope, keyring, manifest, ciphertexts)
    // is kept too: this repository serves it.
    if let Some(h) = crate::ops::access::stored_head(repo)? {
        // A mirror of a public dataset has no branch of its own: what it serves is its head.
        if !h.body.private {
            commits.extend(h.body.main.map(ObjectId));
            commits.extend(h.body.tags.iter().map(|(_, id)| ObjectId(*id)));
        }
        if let (true, Some(env_id)) = (h.body.private, h.body.main.map(ObjectId)) {
            match crate::ops::sealed::read_envelope(repo, &env_id) {
                Ok(env) if crate::ops::sealed::holds_ciphertext(repo)? => {
                    for (id, _) in env.closure(env_id, 0) {
                        r.objects.insert(id, None);
                    }
                }
                // A reader keeps the envelope, keyring and manifest; not the ciphertexts.
                Ok(env) => {
                    for id in [env_id, env.keyring, env.manifest] {
                        r.objects.insert(id, None);
                    }
                }
                Err(e) => r.problems.push(problem(env_id, None, e)),
            }
        }
    }
    let (index, _) = repo.load_index()?;
    let dropped = crate::config::dropped(repo)?;
    for (p, e) in &index {
        if e.kind != EntryKind::Dir {
            r.objects.entry(e.id).or_insert_with(|| Some(p.clone()));
        }
        if matches!(e.kind, EntryKind::File | EntryKind::Executable) {
            r.blobs.insert(e.id);
            if e.size >= crate::store::chunks::CHUNKED_MIN {
                r.big.push((e.id, Some(p.clone())));
            }
        }
    }
    let mut seen_commits = HashSet::new();
    let mut trees: Vec<(ObjectId, String)> = Vec::new();
    while let Some(c) = commits.pop() {
        if !seen_commits.insert(c) {
            continue;
        }
        r.objects.insert(c, None);
        match repo.read_commit(&c) {
            Ok(commit) => {
                if commit.verify().is_err() {
                    r.problems.push(Damaged {
                        id: c.to_hex(),
                        path: None,
                        problem: "commit signature does not verify".into(),
                    });
                }
                commits.extend(commit.body.parents.iter().copied());
                trees.push((commit.body.tree, String::new()));
            }
            Err(e) => r.problems.push(problem(c, None, e)),
        }
    }
    let mut seen_trees = HashSet::new();
    while let Some((t, prefix)) = trees.pop() {
        if !seen_trees.insert(t) {
            continue;
        }
        r.objects
            .entry(t)
            .or_insert_with(|| Some(prefix.clone()).filter(|p| !p.is_empty()));
        match repo.read_tree(&t) {
            Ok(tree) => {
                for e in tree.entries {
                    let path = if prefix.is_empty() {
                        e.name
                    } else {
                        format!("{prefix}/{}", e.name)
                    };
                    if e.kind == EntryKind::Dir {
                        trees.push((e.id, path));
                    } else {
                        if e.kind != EntryKind::Symlink {
                            r.blobs.insert(e.id);
                            if e.size >= crate::store::chunks::CHUNKED_MIN {
                                r.big.push((e.id, Some(path.clone())));
                            }
                        }
                        r.objects.entry(e.id).or_insert(Some(path));
                    }
                }
            }
            Err(e) => r
                .problems
                .push(problem(t, Some(prefix).filter(|p| !p.is_empty()), e)),
        }
    }
    // A mirror over its quota dropped these on purpose: they are not missing.
    r.objects.retain(|id, _| !dropped.contains(id));
    // A file held in chunks reaches its chunk map and its chunks.
    let mut expanded = HashSet::new();
    for (id, path) in std::mem::take(&mut r.big) {
        if dropped.contains(&id) || !expanded.insert(id) {
            continue;
        }
        let Some(map_id) = repo.store().chunk_map_of(&id, u64::MAX)? else {
            continue;
        };
        r.objects.entry(map_id).or_insert_with(|| path.clone());
        match repo.store().read_chunk_map(&map_id) {
            Ok(map) => {
                for (c, _) in map.chunks {
                    r.objects.entry(c).or_insert_with(|| path.clone());
                }
            }
            Err(e) => r.problems.push(problem(map_id, path, e)),
        }
    }
    // A lazy clone holds only the file content it was asked for: the rest is absent.
    if crate::config::is_lazy(repo)? {
        r.absent = r.blobs.iter().filter(|id| !repo.store().has(id)).count() as u64;
        let blobs = std::mem::take(&mut r.blobs);
        r.objects
            .retain(|id, _| !blobs.contains(id) || repo.store().has(id));
    }
    Ok(r)
}

fn problem(id: ObjectId, path: Option<String>, e: Error) -> Damaged {
    let problem = match e {
        Error::ObjectMissing { .. } => "missing".to_string(),
        Error::ObjectCorrupt { .. } => "corrupt: bytes do not hash to the id".to_string(),
        other => other.to_string(),
    };
    Damaged {
        id: id.to_hex(),
        path,
        problem,
    }
}

/// Re-hashes every object in the store and checks that everything reachable is present and
/// intact and every commit's signature verifies.
pub fn verify(repo: &Repo, progress: &dyn Progress) -> Result<VerifyReport> {
    let reach = reachable(repo)?;
    repo.release_db();
    let listed = repo.store().list()?;
    progress.phase(
        "verifying",
        listed.len() as u64,
        listed.iter().map(|(_, n)| n).sum(),
    );
    let next = AtomicUsize::new(0);
    let damaged = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, len)) = listed.get(i) else {
                    break;
                };
                let path = reach.objects.get(id).cloned().flatten();
                let bad = match repo.store().rehash(id) {
                    Ok((got, _)) if got == *id => None,
                    Ok(_) => Some(problem(
                        *id,
                        path,
                        Error::ObjectCorrupt {
                            id: *id,
                            path: None,
                        },
                    )),
                    Err(e) => Some(problem(*id, path, e)),
                };
                if let Some(b) = bad {
                    damaged.lock().expect("not poisoned").push(b);
                }
                progress.inc(*len);
                progress.file_done();
            });
        }
    });
    let present: HashSet<ObjectId> = listed.iter().map(|(id, _)| *id).collect();
    let mut damaged = damaged.into_inner().expect("threads ended");
    for (pack, why) in repo.store().pack_problems() {
        damaged.push(Damaged {
            id: pack.display().to_string(),
            path: None,
            problem: format!("pack index unreadable: {why}; the objects in it count as missing"),
        });
    }
    // Each file held in chunks: its link must name a map of that file (the chunks are
    // objects, re-hashed above; the map is checked against the file when the link is made).
    for (file, map_id) in repo.store().list_chunked()? {
        let path = reach.objects.get(&file).cloned().flatten();
        match repo.store().read_chunk_map(&map_id) {
            Ok(map) if map.file != file => damaged.push(Damaged {
                id: file.to_hex(),
                path,
                problem: format!("its chunk link names the map of another file ({map_id})"),
            }),
            Ok(_) => {}
            Err(e) => damaged.push(problem(file, path, e)),
        }
    }
    for (id, path) in &reach.objects {
        if !present.contains(id) && !repo.store().has(id) {
            damaged.push(Damaged {
                id: id.to_hex(),
                path: path.clone(),
                problem: "missing".into(),
            });
        }
    }
    for p in reach.problems {
        if !damaged.iter().any(|d| d.id == p.id) {
            damaged.push(p);
        }
    }
    damaged.sort_by(|a, b| (&a.path, &a.id).cmp(&(&b.path, &b.id)));
    progress.finish();
    Ok(VerifyReport {
        objects: listed.len() as u64,
        bytes: listed.iter().map(|(_, n)| n).sum(),
        damaged,
        absent: reach.absent,
    })
}

/// What `gc` removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub objects_removed: u64,
    pub bytes_freed: u64,
    pub temp_files_removed: u64,
    /// Outboards `lode serve` cached for objects that are gone (`.lode/outboards`).
    pub outboards_removed: u64,
    pub objects_kept: u64,
}

/// Deletes objects that no ref, no commit history and no index entry reaches, and leftover
/// temp files. Refuses when the history cannot be read whole (it could not tell what is
/// reachable).
pub fn gc(repo: &Repo, dry_run: bool) -> Result<GcReport> {
    let _lock = repo.lock()?;
    let reach = reachable(repo)?;
    if let Some(p) = reach.problems.first() {
        return Err(Error::Other(format!(
            "gc stopped: history cannot be read whole (object {} {}); run `lode verify`",
            p.id, p.problem
        )));
    }
    let mut report = GcReport::default();
    let mut removed = HashSet::new();
    let mut remove = Vec::new();
    for (id, len) in repo.store().list()? {
        // A whole copy of a file also held in chunks (fetched whole, then cut): the chunks
        // are what stays.
        let duplicate = len >= crate::store::chunks::CHUNKED_MIN
            && repo.store().chunk_map_of(&id, len)?.is_some();
        if reach.objects.contains_key(&id) && !duplicate {
            report.objects_kept += 1;
            continue;
        }
        remove.push(id);
        removed.insert(id);
        report.objects_removed += 1;
        report.bytes_freed += len;
    }
    // One call: each pack is rewritten once, whatever the number of objects leaving it.
    if !dry_run {
        repo.store().remove_objects(&remove)?;
        report.bytes_freed += repo.store().remove_orphan_packs();
    }
    // Links of files held in chunks that nothing reaches (their maps and chunks went above).
    for (file, _) in repo.store().list_chunked()? {
        if reach.objects.contains_key(&file) {
            continue;
        }
        if !dry_run {
            let mut none = Some(Default::default());
            repo.store().remove_file(&file, &mut none, &|_| true)?;
        }
        report.objects_removed += 1;
    }
    // The outboards `lode serve` computed for objects that are gone now (removed here, or
    // earlier by a mirror's quota or a taint notice): a cache of the object's hash tree.
    if let Ok(rd) = fs::read_dir(repo.outboards_dir()) {
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<ObjectId>().ok()) else {
                continue;
            };
            if !removed.contains(&id) && repo.store().has(&id) {
                continue;
            }
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if dry_run || fs::remove_file(entry.path()).is_ok() {
                report.outboards_removed += 1;
                report.bytes_freed += len;
            }
        }
    }
    // Temp files and staging directories a killed lode left in the working tree (the writer
    // lock is held: no live checkout owns one; a live `get` writing here is spared by pid).
    let (index, _) = repo.load_index()?;
    repo.release_db();
    let found = Mutex::new(Vec::new());
    crate::worktree::walk_with_leftovers(
        repo.root(),
        &[String::new()],
        |_| Ok(()),
        |item| {
            if index.contains_key(&item.rel) {
                return;
            }
            let name = item.abs.file_name().and_then(|n| n.to_str());
            if let Some((kind, owner)) = name.and_then(crate::leftover::parse) {
                found.lock().expect("not poisoned").push(Leftover {
                    is_dir: item.meta.is_dir(),
                    rel: item.rel,
                    abs: item.abs,
                    kind,
                    owner,
                });
            }
        },
    )?;
    for l in found.into_inner().expect("walk ended") {
        if dry_run {
            if !l.in_use() {
                report.temp_files_removed += 1;
            }
        } else if let Some(bytes) = l.remove(repo.root(), true) {
            report.temp_files_removed += 1;
            report.bytes_freed += bytes;
        }
    }
    // The writer lock is held, so no temp file belongs to a live writer. Partial downloads
    // (kept so that an interrupted fetch resumes) go too.
    let partial = repo.root().join(".lode").join("partial");
    for dir in [repo.store().tmp_dir(), partial.as_path()] {
        let Ok(rd) = fs::read_dir(dir) else { continue };
        for entry in rd.flatten() {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if dry_run || fs::remove_file(entry.path()).is_ok() {
                report.temp_files_removed += 1;
                report.bytes_freed += len;
            }
        }
    }
    // Quarantines of pushes whose server was killed (a live server's stays: it has not
    // taken the writer lock yet while it receives).
    if let Ok(rd) = fs::read_dir(repo.quarantine_dir()) {
        for entry in rd.flatten() {
            let name = entry.file_name();
            let owner = name
                .to_str()
                .and_then(|n| n.strip_prefix("push-"))
                .and_then(|n| n.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if owner.is_some_and(crate::leftover::pid_alive) {
                continue;
            }
            if dry_run || fs::remove_dir_all(entry.path()).is_ok() {
                report.temp_files_removed += 1;
            }
        }
    }
    Ok(report)
}
