//! `checkout`: materialize a revision (or some of its paths) into the working tree.
//!
//! Every file is written to a temp file in `.lode/tmp` (beside its destination where that is
//! on another file system) while its bytes are hashed, and renamed into place only when the
//! hash matches: a corrupt object never reaches the working tree, and a killed checkout
//! leaves no partial file there. Running it again resumes: files already in place with the
//! target's content are kept, and temp files of a killed lode are removed. Parent directories are created as real directories and never traversed
//! through a symlink, so a tree cannot make lode write outside the working tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::db::{IndexEntry, CONFIG, REFS};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{EntryKind, MAX_OBJECT_META_SIZE};
use crate::progress::Progress;
use crate::repo::{FlatEntry, Repo, MAIN};
use crate::store::{create_whole, Stat, Whole, SMALL_FILE};
use crate::worktree::under;

mod place;

use place::TempPath;
pub use place::{place, Placing};

use super::add::remove_empty_parents;
use super::history::resolve;
use super::status::{compare, hash_path, index_flat, scan_worktree};

/// What `checkout` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckoutReport {
    pub commit: String,
    /// Whether HEAD moved (a whole-tree checkout) or only paths were restored.
    pub moved_head: bool,
    pub written: u64,
    pub removed: u64,
    pub bytes_written: u64,
}

/// Checks out `rev`: the whole tree (moving HEAD) when `paths` is empty, else only the
/// given repository paths (HEAD stays). Refuses to overwrite uncommitted changes unless
/// `force`.
pub fn checkout(
    repo: &Repo,
    rev: &str,
    paths: &[String],
    force: bool,
    progress: &dyn Progress,
) -> Result<CheckoutReport> {
    let _lock = repo.lock()?;
    let target_id = resolve(repo, rev)?;
    // `main` (or HEAD while on it) keeps HEAD on the branch; anything else detaches.
    let attach = rev == "main" || (rev == "HEAD" && repo.head()?.branch.is_some());
    let update = if attach {
        HeadUpdate::Attach
    } else {
        HeadUpdate::Detach
    };
    materialize_commit(repo, target_id, rev, paths, force, update, progress)
}

/// Moves `main` to `commit` and the working tree with it (a fast-forward after a fetch);
/// refuses to overwrite uncommitted changes.
pub fn fast_forward(
    repo: &Repo,
    commit: ObjectId,
    progress: &dyn Progress,
) -> Result<CheckoutReport> {
    let _lock = repo.lock()?;
    materialize_commit(
        repo,
        commit,
        &commit.to_hex(),
        &[],
        false,
        HeadUpdate::MoveMain,
        progress,
    )
}

/// Moves `main` from `expected` to `new` and the working tree with it, atomically under the
/// writer lock: refused when `main` is no longer `expected` (someone else moved it), when
/// `new` does not descend from it (unless `force`), or when the working tree has
/// uncommitted changes. This is how a serving peer accepts a push.
pub fn update_main(
    repo: &Repo,
    expected: Option<ObjectId>,
    new: ObjectId,
    force: bool,
    progress: &dyn Progress,
) -> Result<CheckoutReport> {
    let _lock = repo.lock()?;
    check_update(repo, expected, new, force)?;
    materialize_commit(
        repo,
        new,
        &new.to_hex(),
        &[],
        false,
        HeadUpdate::MoveMain,
        progress,
    )
}

/// The checks [`update_main`] makes before it moves anything: `main` is still `expected`,
/// and `new` descends from it (both waived by `force`). A serving peer also runs them on a
/// push's quarantined objects, before they enter the store.
pub fn check_update(
    repo: &Repo,
    expected: Option<ObjectId>,
    new: ObjectId,
    force: bool,
) -> Result<()> {
    if force {
        return Ok(());
    }
    let current = repo.main()?;
    let short = |c: Option<ObjectId>| c.map_or("nothing".to_string(), |c| c.short());
    if current != expected {
        return Err(Error::Stale {
            expected: short(expected),
            found: short(current),
        });
    }
    if let Some(cur) = current {
        if !super::history::is_ancestor(repo, &cur, &new)? {
            return Err(Error::NotFastForward {
                current: cur.short(),
                new: new.short(),
            });
        }
    }
    Ok(())
}

/// What a whole-tree checkout does to HEAD.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeadUpdate {
    /// HEAD points at `main`.
    Attach,
    /// HEAD points at the commit.
    Detach,
    /// `main` moves to the commit and HEAD points at `main`.
    MoveMain,
}

fn materialize_commit(
    repo: &Repo,
    target_id: ObjectId,
    rev: &str,
    paths: &[String],
    force: bool,
    update: HeadUpdate,
    progress: &dyn Progress,
) -> Result<CheckoutReport> {
    let target_commit = repo.read_commit(&target_id)?;
    let target = repo.flatten(&target_commit.body.tree)?;
    let head = repo.head()?;
    let head_flat = repo.flatten_commit(head.commit.as_ref())?;
    let (index, index_time) = repo.load_index()?;
    let link = crate::config::checkout_links(repo)?;
    let lazy = crate::config::is_lazy(repo)?;
    repo.release_db();
    let mut wt = scan_worktree(repo, &index, index_time)?;
    let absent: std::collections::HashSet<String> = wt.absent.iter().cloned().collect();
    let tracked = wt.tracked(&index);
    let in_scope = |p: &str| paths.is_empty() || paths.iter().any(|s| under(p, s));
    // Temp files of a killed lode go (the writer lock is held: no live checkout owns one),
    // except where the target itself has a path of that name.
    wt.leftovers
        .retain(|l| !(target.contains_key(&l.rel) || collides(&target, &l.rel)));
    wt.remove_leftovers(repo.root(), true);
    // Untracked files that already hold what the target has there (a checkout killed
    // after writing them, before recording them in the index): kept and recorded as they
    // are, neither in the way nor written again.
    let mut adopted: BTreeMap<String, Stat> = BTreeMap::new();
    for p in wt.untracked.keys().filter(|p| in_scope(p)) {
        let Some(want) = target.get(p) else { continue };
        let abs = repo.abs(p);
        let Ok(meta) = fs::symlink_metadata(&abs) else {
            continue;
        };
        if hash_path(&abs, &crate::worktree::Meta::of(&meta))
            .ok()
            .flatten()
            .as_ref()
            == Some(want)
        {
            adopted.insert(p.clone(), Stat::of(&meta));
        }
    }
    for p in paths {
        if !target.keys().any(|k| under(k, p)) {
            return Err(Error::PathNotInRev {
                path: p.clone(),
                rev: rev.to_string(),
            });
        }
    }

    // Uncommitted changes that this checkout would overwrite or delete.
    if !force {
        let idx = index_flat(&index);
        let mut dirty: Vec<String> = compare(&head_flat, &idx)
            .into_iter()
            .chain(compare(&idx, &tracked))
            .map(|c| c.path)
            .filter(|p| in_scope(p) && target.get(p) != tracked.get(p))
            .collect();
        dirty.sort();
        dirty.dedup();
        if !dirty.is_empty() {
            return Err(Error::Dirty(dirty));
        }
        let in_the_way: Vec<String> = wt
            .untracked
            .keys()
            .filter(|p| in_scope(p) && !adopted.contains_key(*p))
            .filter(|p| target.contains_key(*p) || collides(&target, p))
            .cloned()
            .collect();
        if !in_the_way.is_empty() {
            return Err(Error::UntrackedInTheWay(in_the_way));
        }
    }

    let mut report = CheckoutReport {
        commit: target_id.to_hex(),
        moved_head: paths.is_empty(),
        ..Default::default()
    };
    let mut new_index: BTreeMap<String, IndexEntry> = index.clone().into();
    for (p, stat) in &adopted {
        let e = target[p];
        new_index.insert(p.clone(), indexed(&e, Some(*stat)));
    }

    // Remove tracked paths that the target does not have (whole-tree checkout only).
    if paths.is_empty() {
        for p in index.keys() {
            if !target.contains_key(p) {
                let abs = repo.abs(p);
                let res = match fs::symlink_metadata(&abs) {
                    Ok(m) if m.is_dir() => fs::remove_dir(&abs).or(Ok(())),
                    Ok(_) => fs::remove_file(&abs),
                    Err(_) => Ok(()),
                };
                res.map_err(|e| Error::io("cannot remove", &abs, e))?;
                remove_empty_parents(repo.root(), &abs);
                new_index.remove(p);
                report.removed += 1;
            }
        }
    }
    let todo: Vec<(&String, &FlatEntry)> = target
        .iter()
        .filter(|(p, e)| {
            in_scope(p)
                && !adopted.contains_key(*p)
                && (absent.contains(*p)
                    || !(tracked.get(*p) == Some(*e) && index.get(p).is_some_and(|i| i.id == e.id)))
        })
        .collect();
    // A lazy clone records file content it has not fetched without writing it (absent);
    // the clean older version standing there goes (its content is in the store, and a
    // changed one was refused above).
    let (todo, unfetched): (Vec<_>, Vec<_>) = todo.into_iter().partition(|(_, e)| {
        !lazy
            || !matches!(e.kind, EntryKind::File | EntryKind::Executable)
            || repo.store().has(&e.id)
    });
    for (p, e) in unfetched {
        let abs = repo.abs(p);
        if fs::symlink_metadata(&abs).is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(&abs).map_err(|err| Error::io("cannot remove", &abs, err))?;
        }
        new_index.insert(p.clone(), indexed(e, None));
    }
    // Known before writing starts: what will be written (unchanged files are skipped).
    if !todo.is_empty() {
        let bytes: u64 = todo.iter().map(|(_, e)| e.size).sum();
        progress.phase("checking out", todo.len() as u64, bytes);
    }
    let mut failed = None;
    for (p, e, written) in materialize_all(repo, &todo, link, progress) {
        match written {
            Ok(stat) => {
                report.written += 1;
                report.bytes_written += e.size;
                new_index.insert(p.clone(), indexed(e, stat));
            }
            Err(err) => {
                failed.get_or_insert(err);
            }
        }
    }
    if let Some(err) = failed {
        // Keep the index true to what was written, so `status` shows the partial result;
        // HEAD does not move.
        super::replace_index(repo, &new_index)?;
        return Err(err);
    }
    // Entries above or below a written path that are no longer valid.
    let stale: Vec<String> = new_index
        .keys()
        .filter(|k| !target.contains_key(*k) && collides(&target, k))
        .cloned()
        .collect();
    for k in stale {
        new_index.remove(&k);
    }
    // Working-tree files are not flushed (git does not either): a file cut short by a crash
    // has another size than its index entry, so `status` reports it.
    super::replace_index(repo, &new_index)?;
    if paths.is_empty() {
        let db = repo.db()?;
        let tx = db.db.begin_write()?;
        {
            let mut refs = tx.open_table(REFS)?;
            match update {
                HeadUpdate::Attach => refs.insert("HEAD", format!("ref:{MAIN}").as_str())?,
                HeadUpdate::Detach => refs.insert("HEAD", target_id.to_hex().as_str())?,
                HeadUpdate::MoveMain => {
                    refs.insert(MAIN, target_id.to_hex().as_str())?;
                    refs.insert("HEAD", format!("ref:{MAIN}").as_str())?
                }
            };
            let mut config = tx.open_table(CONFIG)?;
            config.remove("metadata")?;
            config.insert(super::INDEX_TREE, &target_commit.body.tree.0[..])?;
        }
        tx.commit()?;
    }
    progress.finish();
    Ok(report)
}

/// Reports whether `path` lies inside a path of `target` or a path of `target` lies inside it.
/// The index entry of a checked-out tree entry, with the stat of its file (`None`: not
/// written here, as for a lazy clone's absent content).
fn indexed(e: &FlatEntry, stat: Option<Stat>) -> IndexEntry {
    IndexEntry {
        kind: e.kind,
        id: e.id,
        size: e.size,
        stat,
    }
}

fn collides(target: &BTreeMap<String, FlatEntry>, path: &str) -> bool {
    let prefix = format!("{path}/");
    if target
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix))
    {
        return true;
    }
    let mut cur = path;
    while let Some(i) = cur.rfind('/') {
        cur = &cur[..i];
        if target.contains_key(cur) {
            return true;
        }
    }
    false
}

/// Materializes `todo` (in path order) with two workers on its two halves when it is long
/// (creating files is mostly kernel work, and the peer that served a clone is idle by
/// then). Each worker stops at its first error; what was written is returned either way.
fn materialize_all<'a>(
    repo: &Repo,
    todo: &[(&'a String, &'a FlatEntry)],
    link: bool,
    progress: &dyn Progress,
) -> Vec<(&'a String, &'a FlatEntry, Result<Option<Stat>>)> {
    let run = |part: &[(&'a String, &'a FlatEntry)]| {
        let mut out = Vec::with_capacity(part.len());
        let mut parent = Parent::default();
        for &(p, e) in part {
            let written = materialize(repo, p, e, link, &mut parent);
            let stop = written.is_err();
            if !stop {
                progress.inc(e.size);
                progress.file_done();
            }
            out.push((p, e, written));
            if stop {
                break;
            }
        }
        out
    };
    if todo.len() < 256 {
        return run(todo);
    }
    let (a, b) = todo.split_at(todo.len() / 2);
    std::thread::scope(|s| {
        let second = s.spawn(|| run(b));
        let mut out = run(a);
        out.extend(second.join().unwrap_or_default());
        out
    })
}

/// The directory a checkout worker last wrote into (entries come sorted by path: the files
/// of one directory one after the other), made sure of then.
#[derive(Default)]
struct Parent {
    dir: String,
    /// Whether this worker created it (it held nothing then).
    made: bool,
}

/// Makes sure every directory above `rel` is a real directory inside the working tree;
/// returns whether the last of them was created now, by this call. Two workers may create
/// the same directory at once: one that appeared meanwhile is fine (and not made by this
/// call).
fn ensure_parents(repo: &Repo, rel: &str) -> Result<bool> {
    let mut cur = repo.root().to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    let mut made = false;
    for part in &parts[..parts.len() - 1] {
        cur.push(part);
        made = match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => false,
            Ok(m) if m.file_type().is_symlink() || m.is_file() => {
                // Replaced by a directory in the target: only tracked content stands here
                // (the dirty check ran), so remove it.
                match fs::remove_file(&cur) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Error::io("cannot remove", &cur, e));
                    }
                    _ => create_dir(&cur)?,
                }
            }
            Ok(_) => {
                return Err(Error::PathInTheWay(cur.display().to_string()));
            }
            Err(_) => create_dir(&cur)?,
        };
    }
    Ok(made)
}

/// Creates directory `p`, or finds it already made (by the other worker); returns whether
/// this call created it.
fn create_dir(p: &Path) -> Result<bool> {
    match fs::create_dir(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => Ok(false),
        Err(e) => Err(Error::io("cannot create directory", p, e)),
    }
}

/// Writes one entry into the working tree atomically and returns its new stat. With `link`,
/// a regular file is a read-only hard link to its object (copied where linking fails, as
/// across filesystems). `parent` is the directory the caller's last entry went into.
fn materialize(
    repo: &Repo,
    rel: &str,
    e: &FlatEntry,
    link: bool,
    parent: &mut Parent,
) -> Result<Option<Stat>> {
    // Trees are checked when decoded; this second check keeps a path naming `.lode` (or
    // leaving the tree) from ever being written, whatever produced it.
    if !rel.split('/').all(crate::object::valid_name) {
        return Err(Error::InsideLodeDir(rel.into()));
    }
    let dir = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
    if dir != parent.dir {
        parent.dir.clear();
        parent.made = ensure_parents(repo, rel)?;
        parent.dir.push_str(dir);
    }
    let dest = repo.abs(rel);
    // Whatever stands at the destination and is not what we write goes first (nothing can,
    // in a directory this checkout made: each path is written once).
    let mut free = true;
    let standing = match parent.made {
        true => None,
        false => fs::symlink_metadata(&dest).ok(),
    };
    if let Some(m) = standing {
        free = false;
        if m.is_dir() && e.kind != EntryKind::Dir {
            fs::remove_dir_all(&dest).map_err(|err| Error::io("cannot remove", &dest, err))?;
            free = true;
        }
    }
    match e.kind {
        EntryKind::Dir => {
            if !dest.is_dir() {
                let _ = fs::remove_file(&dest);
                fs::create_dir(&dest)
                    .map_err(|err| Error::io("cannot create directory", &dest, err))?;
            }
            Ok(None)
        }
        EntryKind::Symlink => {
            let target = repo
                .store()
                .read_verified(&e.id, MAX_OBJECT_META_SIZE)
                .map_err(|err| with_path(err, rel))?;
            place(repo.store().tmp_dir(), "checkout", &dest, |tmp| {
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), tmp)
                    .map_err(|err| Error::io("cannot create symlink", tmp, err))
            })?;
            stat_of(&dest)
        }
        EntryKind::File if link && link_out(repo, &e.id, &dest) => stat_of(&dest),
        EntryKind::File | EntryKind::Executable => {
            let mode = e.kind.file_mode();
            if free && e.size <= SMALL_FILE {
                if let Some(stat) = write_small(repo, rel, e, &dest, mode)? {
                    return Ok(Some(stat));
                }
            }
            // Assembled and hashed by the fetch just before (a chunked file): renamed into
            // place. Where that fails (another file system), written as below.
            if let Some(prepared) = repo.store().take_prepared(&e.id) {
                let placed = fs::set_permissions(&prepared, fs::Permissions::from_mode(mode))
                    .is_ok()
                    && prepared.persist(&dest).is_ok();
                if placed {
                    return stat_of(&dest);
                }
            }
            place(repo.store().tmp_dir(), "checkout", &dest, |tmp| {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(tmp)
                    .map_err(|err| Error::io("cannot create", tmp, err))?;
                repo.store()
                    .copy_out(&e.id, &file)
                    .map_err(|err| with_path(err, rel))?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|err| Error::io("cannot set permissions of", tmp, err))
            })?;
            stat_of(&dest)
        }
    }
}

/// Writes a small file where nothing stands, the cheap way: the object read and checked in
/// memory, then a nameless file in `dest`'s directory linked under `dest` once complete
/// ([`create_whole`]; a killed checkout leaves nothing). `None` when that cannot be done
/// (the object is larger than its entry says, something appeared at `dest`, the file system
/// has no nameless files): [`place`] then writes it.
fn write_small(
    repo: &Repo,
    rel: &str,
    e: &FlatEntry,
    dest: &Path,
    mode: u32,
) -> Result<Option<Stat>> {
    let Some(data) = repo
        .store()
        .read_small(&e.id)
        .map_err(|err| with_path(err, rel))?
    else {
        return Ok(None);
    };
    match create_whole(dest, &data, mode) {
        Ok(Whole::Created(file)) => {
            let m = file
                .metadata()
                .map_err(|err| Error::io("cannot stat", dest, err))?;
            Ok(Some(Stat::of(&m)))
        }
        Ok(Whole::Exists | Whole::Unsupported) => Ok(None),
        Err(err) => Err(Error::io("cannot write", dest, err)),
    }
}

/// Hard-links object `id` to `dest` (through a temporary name in `.lode/tmp`, then a
/// rename), read-only like every object. False when linking is not possible (`dest` is on
/// another file system); nothing is left behind then.
fn link_out(repo: &Repo, id: &ObjectId, dest: &Path) -> bool {
    let tmp = TempPath::new(crate::leftover::in_tmp_dir(
        repo.store().tmp_dir(),
        "checkout",
    ));
    fs::hard_link(repo.store().path(id), tmp.path()).is_ok()
        && fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o444)).is_ok()
        && tmp.rename_to(dest).is_ok()
}

fn stat_of(p: &Path) -> Result<Option<Stat>> {
    let m = fs::symlink_metadata(p).map_err(|e| Error::io("cannot stat", p, e))?;
    Ok(Some(Stat::of(&m)))
}

fn with_path(err: Error, rel: &str) -> Error {
    match err {
        Error::ObjectCorrupt { id, .. } => Error::ObjectCorrupt {
            id,
            path: Some(rel.to_string()),
        },
        Error::ObjectMissing { id, .. } => Error::ObjectMissing {
            id,
            path: Some(rel.to_string()),
        },
        other => other,
    }
}
