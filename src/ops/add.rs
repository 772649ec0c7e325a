//! `add` and `rm`: stage files, symlinks and empty directories into the index.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::db::IndexEntry;
use crate::error::{Error, Result};
use crate::object::EntryKind;
use crate::progress::Progress;
use crate::repo::Repo;
use crate::store::pack::PackWriter;
use crate::store::{ImportMode, Stat, Store};
use crate::worktree::{self, under, Meta, WalkKind};

use super::{parent, racy, write_index};

/// What `add` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct AddReport {
    /// Paths newly tracked.
    pub added: Vec<String>,
    /// Tracked paths whose content changed.
    pub updated: Vec<String>,
    /// Tracked paths gone from the working tree, now unstaged.
    pub removed: Vec<String>,
    /// Files read and hashed (the others matched the stat cache).
    pub files_hashed: u64,
    /// Bytes newly written to the store.
    pub bytes_stored: u64,
}

/// Options of `add`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddOptions {
    pub mode: ImportMode,
}

/// What staging one path found.
enum Outcome {
    /// The stat cache says the path is as staged.
    Unchanged,
    /// A new index entry (the bytes it added to the store are counted apart, so that the
    /// walk's results, one per path, stay 8 bytes smaller).
    Staged(IndexEntry),
    /// A directory (its entries are walked separately).
    Dir,
    /// A file to read and hash, once the walk has found them all (so that the byte total
    /// is known before hashing starts).
    Pending(Stat),
    /// A tracked path to unstage.
    Unstage,
}

/// Stages one walked path.
fn stage_path(
    repo: &Repo,
    abs: &Path,
    meta: &Meta,
    old: Option<&IndexEntry>,
    index_time: i64,
    stored: &AtomicU64,
) -> Result<Outcome> {
    let (stat, kind) = (meta.stat, meta.kind);
    if kind != WalkKind::Dir {
        if let Some(old) = old {
            if old.stat == Some(stat) && !racy(stat.mtime_ns, index_time) {
                return Ok(Outcome::Unchanged);
            }
        }
    }
    match kind {
        WalkKind::File => Ok(Outcome::Pending(stat)),
        WalkKind::Symlink => {
            let target = fs::read_link(abs).map_err(|e| Error::io("cannot read link", abs, e))?;
            let bytes = target.as_os_str().as_bytes();
            let id = repo.store().put_bytes(bytes)?;
            let e = IndexEntry {
                kind: EntryKind::Symlink,
                id,
                size: bytes.len() as u64,
                stat: Some(stat),
            };
            stored.fetch_add(e.size, Ordering::Relaxed);
            Ok(Outcome::Staged(e))
        }
        WalkKind::Dir => Ok(Outcome::Dir),
        WalkKind::Other => Err(Error::SpecialFile(abs.to_path_buf())),
    }
}

/// Reads and stores one file found by the walk (a small one into `pack`, when given).
fn hash_file(
    repo: &Repo,
    rel: &str,
    stat: &Stat,
    opts: AddOptions,
    pack: Option<&mut PackWriter>,
    stored: &AtomicU64,
) -> Result<Outcome> {
    let imp =
        repo.store()
            .import_file_into(&repo.abs(rel), stat, opts.mode, pack.map(|p| p as _))?;
    let kind = if stat.executable() {
        EntryKind::Executable
    } else {
        EntryKind::File
    };
    let e = IndexEntry {
        kind,
        id: imp.id,
        size: stat.size,
        stat: Some(imp.stat),
    };
    stored.fetch_add(imp.stored, Ordering::Relaxed);
    Ok(Outcome::Staged(e))
}

/// A worker of `add` names its pack of small files once it holds this many bytes.
const PACK_BYTES: u64 = 64 << 20;

/// Hashes the pending files of `results` on as many threads as the walk uses, reporting a
/// `hashing` phase whose totals are known before it starts.
fn hash_pending(
    repo: &Repo,
    results: &mut [(Box<str>, Outcome)],
    opts: AddOptions,
    progress: &dyn Progress,
    stored: &AtomicU64,
) -> Result<()> {
    let (mut pending, mut bytes) = (0, 0);
    for (_, o) in results.iter() {
        if let Outcome::Pending(stat) = o {
            pending += 1;
            bytes += stat.size;
        }
    }
    if pending == 0 {
        return Ok(());
    }
    progress.phase("hashing", pending as u64, bytes);
    let failed = AtomicBool::new(false);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8)
        .min(pending);
    // Small files go into packs, one per worker (named at PACK_BYTES and at the end), not
    // a file each: the one `syncfs` before the index names them then writes a few large
    // files instead of an inode and a block per file. A repository whose checkouts
    // hard-link from the store needs a file per object; `--link` links files whole.
    let packed = opts.mode == ImportMode::Copy && !crate::config::checkout_links(repo)?;
    // The writers look objects up in the packs there were before this `add`, not in those
    // it names (at a million files, an index entry held for every object just written): a
    // content found twice, by two writers or across one writer's packs, is stored twice,
    // which costs its bytes, never correctness. Nothing else in `add` reads them back.
    let pack_store = packed.then(|| repo.store().with_packs_as_now());
    // Workers take small runs of the results in turn and hash their pending files in
    // place: no second vector of outcomes.
    let runs = Mutex::new(results.chunks_mut(64));
    let done: Vec<Result<()>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut pack = pack_store.as_ref().map(Store::pack_writer);
                    while !failed.load(Ordering::Relaxed) {
                        let Some(run) = runs.lock().expect("not poisoned").next() else {
                            break;
                        };
                        for (rel, outcome) in run {
                            let Outcome::Pending(stat) = outcome else {
                                continue;
                            };
                            let stat = *stat;
                            match hash_file(repo, rel, &stat, opts, pack.as_mut(), stored) {
                                Ok(o) => *outcome = o,
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                            progress.inc(stat.size);
                            progress.file_done();
                        }
                        if pack.as_ref().is_some_and(|p| p.bytes() >= PACK_BYTES) {
                            let full = std::mem::replace(
                                &mut pack,
                                pack_store.as_ref().map(Store::pack_writer),
                            );
                            full.map(PackWriter::finish).transpose()?;
                        }
                    }
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    pack.map(PackWriter::finish).transpose()?;
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Other("a hashing thread failed".into())))
            })
            .collect()
    });
    done.into_iter().collect()
}

/// Stages `paths` (repository paths; "" is the whole tree), recursively, like
/// `git add -A PATH`: new and changed files are stored, vanished ones unstaged.
pub fn add(
    repo: &Repo,
    paths: &[String],
    opts: AddOptions,
    progress: &dyn Progress,
) -> Result<AddReport> {
    let _lock = repo.lock()?;
    let (index, index_time) = repo.load_index()?;
    repo.release_db();
    let stored = AtomicU64::new(0);
    // Paths as boxed strings: 8 bytes less than a `String` each, at a million paths 8 MB.
    let results: Mutex<Vec<(Box<str>, Outcome)>> = Mutex::new(Vec::new());
    let record = |rel: String, outcome: Outcome| {
        results
            .lock()
            .expect("not poisoned")
            .push((rel.into_boxed_str(), outcome));
    };
    // Named files are staged directly (even when ignored, as git does); directories walked.
    let mut walk_targets = Vec::new();
    for p in paths {
        let abs = repo.abs(p);
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => walk_targets.push(p.clone()),
            Ok(m) => record(
                p.clone(),
                stage_path(repo, &abs, &Meta::of(&m), index.get(p), index_time, &stored)?,
            ),
            Err(_) if index.keys().any(|k| under(k, p)) => {}
            Err(_) => return Err(Error::NoMatch(p.clone())),
        }
    }
    if !walk_targets.is_empty() {
        progress.scan("scanning");
        worktree::walk(repo.root(), &walk_targets, |item| {
            let old = index.get(&item.rel);
            let outcome = stage_path(repo, &item.abs, &item.meta, old, index_time, &stored)?;
            if !item.meta.is_dir() {
                progress.file_done();
            }
            record(item.rel, outcome);
            Ok(())
        })?;
    }
    let mut results = results.into_inner().expect("walk ended");
    // In path order: what the walk met is then found by binary search, and the index is
    // written in order.
    results.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let met = |path: &str| results.binary_search_by(|(p, _)| (**p).cmp(path)).is_ok();

    // Tracked paths under the targets that the walk did not meet: ignored but tracked
    // (staged like named files), or gone (unstaged).
    let mut report = AddReport::default();
    let mut unmet = Vec::new();
    for (path, old) in index
        .iter()
        .filter(|(k, _)| paths.iter().any(|p| under(k, p)))
    {
        if met(path) {
            continue;
        }
        let abs = repo.abs(path);
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() && old.kind == EntryKind::Dir => {}
            Ok(m) if !m.is_dir() => {
                let outcome =
                    stage_path(repo, &abs, &Meta::of(&m), Some(old), index_time, &stored)?;
                unmet.push((path.as_str().into(), outcome));
            }
            _ => {
                report.removed.push(path.clone());
                unmet.push((path.as_str().into(), Outcome::Unstage));
            }
        }
    }
    if !unmet.is_empty() {
        results.extend(unmet);
        results.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    hash_pending(repo, &mut results, opts, progress, &stored)?;
    progress.finish();

    let nonempty: HashSet<String> = {
        let mut set: HashSet<&str> = HashSet::new();
        for (p, _) in &results {
            mark_parents(p, &mut set);
        }
        set.into_iter().map(str::to_string).collect()
    };
    if let Some((path, _)) = results
        .iter()
        .find(|(_, o)| matches!(o, Outcome::Pending(_)))
    {
        return Err(Error::Other(format!(
            "internal error: {path:?} was not hashed"
        )));
    }
    let empty_tree = crate::ObjectId::of(&crate::object::Tree::default().encode());
    // The results become the changes in place (no second vector of every path and entry):
    // each is kept as `Staged` (to write) or `Unstage` (to remove), or dropped.
    let mut changes = results;
    report.bytes_stored = stored.load(Ordering::Relaxed);
    changes.retain_mut(|(path, outcome)| {
        let old = index.get(path);
        match outcome {
            Outcome::Unchanged | Outcome::Pending(_) => false,
            Outcome::Unstage => true,
            Outcome::Dir => {
                let empty = !nonempty.contains(&**path);
                match old {
                    // A file where a directory now is, or an empty directory that filled up.
                    Some(e) if e.kind != EntryKind::Dir || !empty => {
                        if e.kind != EntryKind::Dir {
                            report.removed.push(path.to_string());
                        }
                        *outcome = Outcome::Unstage;
                        true
                    }
                    None if empty => {
                        let e = IndexEntry {
                            kind: EntryKind::Dir,
                            id: empty_tree,
                            size: 0,
                            stat: None,
                        };
                        report.added.push(path.to_string());
                        *outcome = Outcome::Staged(e);
                        true
                    }
                    _ => false,
                }
            }
            Outcome::Staged(entry) => {
                if matches!(entry.kind, EntryKind::File | EntryKind::Executable) {
                    report.files_hashed += 1;
                }
                match old {
                    Some(o) if o.id == entry.id && o.kind == entry.kind => {}
                    Some(_) => report.updated.push(path.to_string()),
                    None => report.added.push(path.to_string()),
                }
                true
            }
        }
    });
    // Entries above a new path must be directories: drop tracked files or empty-directory
    // markers that stand there.
    let mut above: Vec<String> = Vec::new();
    for (p, o) in &changes {
        if matches!(o, Outcome::Unstage) {
            continue;
        }
        let mut cur = parent(p);
        while !cur.is_empty() {
            if let Some(e) = index.get(cur) {
                let changed = changes.binary_search_by(|(c, _)| (**c).cmp(cur)).is_ok();
                if !changed && !above.iter().any(|a| a == cur) {
                    above.push(cur.to_string());
                    if e.kind != EntryKind::Dir {
                        report.removed.push(cur.to_string());
                    }
                }
            }
            cur = parent(cur);
        }
    }
    if !above.is_empty() {
        changes.extend(
            above
                .into_iter()
                .map(|p| (p.into_boxed_str(), Outcome::Unstage)),
        );
        changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    if changes.is_empty() {
        return Ok(report);
    }
    repo.store().sync()?;
    write_index(
        repo,
        changes.iter().map(|(p, o)| match o {
            Outcome::Staged(e) => (&**p, Some(e)),
            _ => (&**p, None),
        }),
    )?;
    report.added.sort();
    report.updated.sort();
    report.removed.sort();
    report.removed.dedup();
    Ok(report)
}

fn mark_parents<'a>(path: &'a str, set: &mut HashSet<&'a str>) {
    let mut cur = parent(path);
    while !cur.is_empty() && set.insert(cur) {
        cur = parent(cur);
    }
}

/// What `rm` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RmReport {
    pub removed: Vec<String>,
}

/// Unstages `paths` (and everything below them) and, unless `cached`, deletes them from the
/// working tree. Unless `force`, refuses to delete a file that is the only copy of its
/// content: one whose working content differs from the index, or whose staged content
/// differs from HEAD's (git's rule: `--cached` keeps the file, `-f` deletes anyway).
pub fn rm(repo: &Repo, paths: &[String], cached: bool, force: bool) -> Result<RmReport> {
    let _lock = repo.lock()?;
    let (index, _) = repo.load_index()?;
    let head = repo.flatten_commit(repo.head()?.commit.as_ref())?;
    let committed = |k: &str, e: &IndexEntry| {
        e.kind == EntryKind::Dir
            || head
                .get(k)
                .is_some_and(|h| h.id == e.id && h.kind == e.kind)
    };
    let mut changes = BTreeMap::new();
    let mut dirty = Vec::new();
    for p in paths {
        let matched: Vec<(&String, &IndexEntry)> =
            index.iter().filter(|(k, _)| under(k, p)).collect();
        if matched.is_empty() {
            return Err(Error::NoMatch(p.clone()));
        }
        for (k, e) in matched {
            if !cached && !force && (!committed(k, e) || modified(repo, k, e)?) {
                dirty.push(k.clone());
            }
            changes.insert(k.clone(), None);
        }
    }
    if !dirty.is_empty() {
        return Err(Error::RmUnsaved(dirty));
    }
    write_index(repo, changes.iter().map(|(p, e)| (p.as_str(), e.as_ref())))?;
    let removed: Vec<String> = changes.into_keys().collect();
    if !cached {
        for k in &removed {
            let abs = repo.abs(k);
            let _ = match fs::symlink_metadata(&abs) {
                Ok(m) if m.is_dir() => fs::remove_dir(&abs),
                Ok(_) => fs::remove_file(&abs),
                Err(_) => Ok(()),
            };
            remove_empty_parents(repo.root(), &abs);
        }
    }
    Ok(RmReport { removed })
}

/// Reports whether the working file differs from its index entry (missing counts as clean).
fn modified(repo: &Repo, path: &str, e: &IndexEntry) -> Result<bool> {
    let abs = repo.abs(path);
    let Ok(m) = fs::symlink_metadata(&abs) else {
        return Ok(false);
    };
    if e.stat == Some(Stat::of(&m)) || e.kind == EntryKind::Dir {
        return Ok(false);
    }
    let now = super::status::hash_path(&abs, &Meta::of(&m))?;
    Ok(now.is_none_or(|n| n.id != e.id || n.kind != e.kind))
}

/// Removes now-empty directories between `path` and the repository root.
pub(crate) fn remove_empty_parents(root: &Path, path: &Path) {
    let mut cur: Option<PathBuf> = path.parent().map(Path::to_path_buf);
    while let Some(d) = cur {
        if d == root || fs::remove_dir(&d).is_err() {
            break;
        }
        cur = d.parent().map(Path::to_path_buf);
    }
}
