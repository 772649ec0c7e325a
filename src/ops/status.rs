//! `status`: staged (index vs HEAD), unstaged (working tree vs index) and untracked paths.
//!
//! Fast on an unchanged tree: a file whose `lstat` matches the index's stat cache (size,
//! mtime, ctime, inode, mode) is not read, as in git; only racy or changed files are hashed.

use std::collections::BTreeMap;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::db::{Index, IndexEntry};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::leftover::{self, Leftover};
use crate::object::EntryKind;
use crate::repo::{FlatEntry, Repo};
use crate::store::{hash_reader, Stat};
use crate::worktree::{self, Meta, WalkKind};

use super::racy;

/// How a path differs between two states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub path: String,
    pub change: ChangeKind,
    /// Size before (absent for added paths).
    pub old_size: Option<u64>,
    /// Size after (absent for deleted paths).
    pub new_size: Option<u64>,
}

/// The result of `status`.
#[derive(Debug, Default, serde::Serialize)]
pub struct StatusReport {
    pub branch: Option<String>,
    pub head: Option<String>,
    /// Index vs HEAD.
    pub staged: Vec<Change>,
    /// Working tree vs index.
    pub unstaged: Vec<Change>,
    pub untracked: Vec<String>,
    /// Temp files left in the working tree by a killed lode that `status` could not remove
    /// (another command was writing; `gc` or the next checkout removes them).
    pub leftovers: Vec<String>,
    /// Whether `lode meta` changed something the next commit will record.
    pub metadata_changed: bool,
    /// Tracked files whose content this lazy clone has not fetched (`lode get PATH`), or
    /// dropped (`lode drop PATH`): absent, not deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<String>,
}

impl StatusReport {
    /// Reports whether nothing is staged, modified or deleted (untracked files aside).
    pub fn is_clean(&self) -> bool {
        self.staged.is_empty() && self.unstaged.is_empty() && !self.metadata_changed
    }
}

/// Compares two flattened states.
pub fn compare(
    old: &BTreeMap<String, FlatEntry>,
    new: &BTreeMap<String, FlatEntry>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for (p, o) in old {
        match new.get(p) {
            None => out.push(Change {
                path: p.clone(),
                change: ChangeKind::Deleted,
                old_size: Some(o.size),
                new_size: None,
            }),
            Some(n) if n.id != o.id || n.kind != o.kind => out.push(Change {
                path: p.clone(),
                change: ChangeKind::Modified,
                old_size: Some(o.size),
                new_size: Some(n.size),
            }),
            Some(_) => {}
        }
    }
    for (p, n) in new {
        if !old.contains_key(p) {
            out.push(Change {
                path: p.clone(),
                change: ChangeKind::Added,
                old_size: None,
                new_size: Some(n.size),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Flattens the index to what the next commit records.
pub fn index_flat(index: &Index) -> BTreeMap<String, FlatEntry> {
    index
        .iter()
        .map(|(k, e)| {
            (
                k.clone(),
                FlatEntry {
                    kind: e.kind,
                    id: e.id,
                    size: e.size,
                },
            )
        })
        .collect()
}

/// The working tree as seen through the index: only what differs from it is kept, so an
/// unchanged tree of many files costs no copies.
pub struct Worktree {
    /// Tracked paths whose working state differs from the index (`None`: missing).
    pub changed: BTreeMap<String, Option<FlatEntry>>,
    /// Untracked files and symlinks, with sizes.
    pub untracked: BTreeMap<String, u64>,
    /// Tracked paths whose content was re-hashed and found unchanged, with their new stat:
    /// the stat cache can learn them (as `git status` refreshes its index).
    pub refreshed: Vec<(String, Stat)>,
    /// Temp files and staging directories of lode itself (not untracked files: a killed
    /// lode left them, or a running one is writing them).
    pub leftovers: Vec<Leftover>,
    /// Tracked files never written here (a lazy clone's): absent, standing as unchanged.
    pub absent: Vec<String>,
}

impl Worktree {
    /// Removes the leftovers no live process owns (with `locked`, the writer lock held, also
    /// an older lode's) and keeps the others. Returns (removed, bytes freed).
    pub fn remove_leftovers(&mut self, root: &Path, locked: bool) -> (u64, u64) {
        let mut out = (0, 0);
        self.leftovers.retain(|l| match l.remove(root, locked) {
            Some(bytes) => {
                out.0 += 1;
                out.1 += bytes;
                false
            }
            None => true,
        });
        out
    }
}

impl Worktree {
    /// Returns every tracked path as it is on disk now (missing ones absent).
    pub fn tracked(&self, index: &Index) -> BTreeMap<String, FlatEntry> {
        let mut out = index_flat(index);
        for (p, now) in &self.changed {
            match now {
                Some(e) => out.insert(p.clone(), *e),
                None => out.remove(p),
            };
        }
        out
    }

    /// Lists working-tree changes against the index.
    pub fn unstaged(&self, index: &Index) -> Vec<Change> {
        let mut out = Vec::new();
        for (p, now) in &self.changed {
            let Some(old) = index.get(p) else { continue };
            let (change, new_size) = match now {
                None => (ChangeKind::Deleted, None),
                Some(n) if n.id != old.id || n.kind != old.kind => {
                    (ChangeKind::Modified, Some(n.size))
                }
                Some(_) => continue,
            };
            out.push(Change {
                path: p.clone(),
                change,
                old_size: Some(old.size),
                new_size,
            });
        }
        out
    }
}

/// Hashes the working file or link at `abs` as the entry kind it is now.
pub(crate) fn hash_path(abs: &Path, meta: &Meta) -> Result<Option<FlatEntry>> {
    if meta.kind == WalkKind::Symlink {
        let t = fs::read_link(abs).map_err(|e| Error::io("cannot read link", abs, e))?;
        let bytes = t.as_os_str().as_bytes();
        return Ok(Some(FlatEntry {
            kind: EntryKind::Symlink,
            id: ObjectId::of(bytes),
            size: bytes.len() as u64,
        }));
    }
    if meta.kind != WalkKind::File {
        return Ok(None);
    }
    let f = fs::File::open(abs).map_err(|e| Error::io("cannot read", abs, e))?;
    let (id, size) = hash_reader(f).map_err(|e| Error::io("cannot read", abs, e))?;
    let kind = if meta.stat.executable() {
        EntryKind::Executable
    } else {
        EntryKind::File
    };
    Ok(Some(FlatEntry { kind, id, size }))
}

/// Reads the working tree state of every tracked path (hashing only what the stat cache
/// cannot vouch for) and lists untracked paths.
pub fn scan_worktree(repo: &Repo, index: &Index, index_time: i64) -> Result<Worktree> {
    let changed = Mutex::new(BTreeMap::new());
    let untracked = Mutex::new(BTreeMap::new());
    let refreshed = Mutex::new(Vec::new());
    let check = |rel: &str, abs: &Path, meta: &Meta, e: &IndexEntry| -> Result<()> {
        let stat = meta.stat;
        let now = if e.kind == EntryKind::Dir {
            if meta.is_dir() {
                return Ok(());
            }
            None
        } else if e.stat == Some(stat) && !racy(stat.mtime_ns, index_time) {
            return Ok(());
        } else {
            hash_path(abs, meta)?
        };
        let same = now.is_some_and(|n| n.id == e.id && n.kind == e.kind);
        if same && e.stat != Some(stat) {
            refreshed
                .lock()
                .expect("not poisoned")
                .push((rel.to_string(), stat));
        }
        if !same {
            changed
                .lock()
                .expect("not poisoned")
                .insert(rel.to_string(), now);
        }
        Ok(())
    };
    // Paths are looked up in the sorted index itself (no second table of every path), and
    // the ones the walk met are marked by position.
    let seen: Vec<AtomicBool> = (0..index.len()).map(|_| AtomicBool::new(false)).collect();
    let leftovers = Mutex::new(Vec::new());
    worktree::walk_with_leftovers(
        repo.root(),
        &[String::new()],
        |item| {
            // Each walking thread visits a directory's entries in name order: the index
            // position found last is a good guess for the next.
            thread_local! {
                static LAST: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
            }
            let found = LAST.with(|last| {
                let at = index.position_after(last.get(), item.rel.as_str());
                if let Some(i) = at {
                    last.set(i);
                }
                at
            });
            match found {
                Some(i) => {
                    seen[i].store(true, Ordering::Relaxed);
                    check(&item.rel, &item.abs, &item.meta, index.at(i).1)?;
                }
                None if matches!(item.meta.kind, WalkKind::File | WalkKind::Symlink) => {
                    untracked
                        .lock()
                        .expect("not poisoned")
                        .insert(item.rel, item.meta.stat.size);
                }
                None => {}
            }
            Ok(())
        },
        |item| {
            // A tracked path with a temp-like name is checked below like any tracked path.
            if index.contains_key(item.rel.as_str()) {
                return;
            }
            if let Some((kind, owner)) = item
                .abs
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(leftover::parse)
            {
                leftovers.lock().expect("not poisoned").push(Leftover {
                    rel: item.rel,
                    abs: item.abs,
                    kind,
                    owner,
                    is_dir: item.meta.is_dir(),
                });
            }
        },
    )?;
    // Tracked paths the walk did not meet: ignored ones still on disk, deleted ones, or
    // (in a lazy clone) files never written here: no stat recorded.
    let mut absent = Vec::new();
    for (i, (p, e)) in index.iter().enumerate() {
        if !seen[i].load(Ordering::Relaxed) {
            let abs = repo.abs(p);
            match fs::symlink_metadata(&abs) {
                Ok(meta) => check(p, &abs, &Meta::of(&meta), e)?,
                Err(_) if is_absent(e) => absent.push(p.clone()),
                Err(_) => {
                    changed
                        .lock()
                        .expect("not poisoned")
                        .insert(p.clone(), None);
                }
            }
        }
    }
    let mut leftovers = leftovers.into_inner().expect("walk ended");
    leftovers.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Worktree {
        changed: changed.into_inner().expect("walk ended"),
        untracked: untracked.into_inner().expect("walk ended"),
        refreshed: refreshed.into_inner().expect("walk ended"),
        leftovers,
        absent,
    })
}

/// An index entry for a file that was never written to the working tree (no stat
/// recorded: only a lazy clone's checkout records files so, their content not fetched or
/// dropped): absent, not deleted.
pub(crate) fn is_absent(e: &IndexEntry) -> bool {
    e.stat.is_none() && matches!(e.kind, EntryKind::File | EntryKind::Executable)
}

/// Computes `status`.
pub fn status(repo: &Repo) -> Result<StatusReport> {
    let head = repo.head()?;
    let head_commit = head.commit.map(|c| repo.read_commit(&c)).transpose()?;
    let (index, index_time) = repo.load_index()?;
    // When the index is known to equal HEAD's tree, nothing is staged: skip reading trees.
    let index_tree = {
        let db = repo.db()?;
        let tx = db.db.begin_read()?;
        crate::db::get_config(&tx, super::INDEX_TREE)?
    };
    let staged = match &head_commit {
        Some(c) if index_tree.as_deref() == Some(&c.body.tree.0[..]) => Vec::new(),
        Some(c) => compare(&repo.flatten(&c.body.tree)?, &index_flat(&index)),
        None => compare(&BTreeMap::new(), &index_flat(&index)),
    };
    let metadata = repo.pending_metadata()?;
    repo.release_db();
    let mut wt = scan_worktree(repo, &index, index_time)?;
    super::refresh_stats(repo, &index, &wt.refreshed)?;
    // Temp files of a killed lode go, when no writer runs now (taking the writer lock
    // without waiting: a pid alone could be another pid namespace's); what a running lode
    // writes is not shown.
    if !wt.leftovers.is_empty() {
        if let Ok(_lock) = crate::db::WriteLock::acquire(&repo.lock_path(), Duration::ZERO) {
            wt.remove_leftovers(repo.root(), true);
        }
    }
    let head_meta = head_commit.map(|c| c.body.metadata).unwrap_or_default();
    Ok(StatusReport {
        branch: head
            .branch
            .as_deref()
            .map(|b| b.trim_start_matches("heads/").to_string()),
        head: head.commit.map(|c| c.to_hex()),
        staged,
        unstaged: wt.unstaged(&index),
        untracked: wt.untracked.into_keys().collect(),
        leftovers: wt
            .leftovers
            .iter()
            .filter(|l| !l.in_use())
            .map(|l| l.rel.clone())
            .collect(),
        metadata_changed: metadata != head_meta,
        absent: wt.absent,
    })
}
