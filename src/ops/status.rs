//! `status`: staged (index vs HEAD), unstaged (working tree vs index) and untracked paths.
//!
//! Fast on an unchanged tree: a file whose `lstat` matches the index's stat cache (size,
//! mtime, ctime, inode, mode) is not read, as in git; only racy or changed files are hashed.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

use crate::db::IndexEntry;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::repo::{FlatEntry, Repo};
use crate::store::{hash_reader, Stat};
use crate::worktree::{self, WalkKind};

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
    /// Whether `lode meta` changed something the next commit will record.
    pub metadata_changed: bool,
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
pub fn index_flat(index: &BTreeMap<String, IndexEntry>) -> BTreeMap<String, FlatEntry> {
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

/// The working tree as seen through the index.
pub struct Worktree {
    /// Tracked paths as they are on disk now (missing ones absent).
    pub tracked: BTreeMap<String, FlatEntry>,
    /// Untracked files and symlinks, with sizes.
    pub untracked: BTreeMap<String, u64>,
}

/// Hashes the working file or link at `abs` as the entry kind it is now.
fn hash_path(abs: &Path, meta: &fs::Metadata) -> Result<Option<FlatEntry>> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        let t = fs::read_link(abs).map_err(|e| Error::io("cannot read link", abs, e))?;
        let bytes = t.as_os_str().as_bytes();
        return Ok(Some(FlatEntry {
            kind: EntryKind::Symlink,
            id: ObjectId::of(bytes),
            size: bytes.len() as u64,
        }));
    }
    if !ft.is_file() {
        return Ok(None);
    }
    let f = fs::File::open(abs).map_err(|e| Error::io("cannot read", abs, e))?;
    let (id, size) = hash_reader(f).map_err(|e| Error::io("cannot read", abs, e))?;
    let kind = if Stat::of(meta).executable() {
        EntryKind::Executable
    } else {
        EntryKind::File
    };
    Ok(Some(FlatEntry { kind, id, size }))
}

/// Reads the working tree state of every tracked path (hashing only what the stat cache
/// cannot vouch for) and lists untracked paths.
pub fn scan_worktree(
    repo: &Repo,
    index: &BTreeMap<String, IndexEntry>,
    index_time: i64,
) -> Result<Worktree> {
    let tracked = Mutex::new(BTreeMap::new());
    let untracked = Mutex::new(BTreeMap::new());
    let seen = Mutex::new(HashSet::new());
    let check = |rel: &str, abs: &Path, meta: &fs::Metadata, e: &IndexEntry| -> Result<()> {
        let stat = Stat::of(meta);
        let now = if e.kind == EntryKind::Dir {
            meta.is_dir().then_some(FlatEntry {
                kind: e.kind,
                id: e.id,
                size: 0,
            })
        } else if e.stat == Some(stat) && !racy(stat.mtime_ns, index_time) {
            Some(FlatEntry {
                kind: e.kind,
                id: e.id,
                size: e.size,
            })
        } else {
            hash_path(abs, meta)?
        };
        if let Some(now) = now {
            tracked
                .lock()
                .expect("not poisoned")
                .insert(rel.to_string(), now);
        }
        Ok(())
    };
    worktree::walk(repo.root(), &[String::new()], |item| {
        match index.get(&item.rel) {
            Some(e) => {
                seen.lock().expect("not poisoned").insert(item.rel.clone());
                check(&item.rel, &item.abs, &item.meta, e)?;
            }
            None if matches!(item.kind, WalkKind::File | WalkKind::Symlink) => {
                untracked
                    .lock()
                    .expect("not poisoned")
                    .insert(item.rel, item.meta.len());
            }
            None => {}
        }
        Ok(())
    })?;
    let seen = seen.into_inner().expect("walk ended");
    // Tracked paths the walk skipped (ignored, or named under an ignored directory).
    for (p, e) in index {
        if !seen.contains(p) {
            let abs = repo.abs(p);
            if let Ok(meta) = fs::symlink_metadata(&abs) {
                check(p, &abs, &meta, e)?;
            }
        }
    }
    Ok(Worktree {
        tracked: tracked.into_inner().expect("walk ended"),
        untracked: untracked.into_inner().expect("walk ended"),
    })
}

/// Computes `status`.
pub fn status(repo: &Repo) -> Result<StatusReport> {
    let head = repo.head()?;
    let head_flat = repo.flatten_commit(head.commit.as_ref())?;
    let (index, index_time) = repo.load_index()?;
    let idx = index_flat(&index);
    let wt = scan_worktree(repo, &index, index_time)?;
    let head_meta = match head.commit {
        Some(c) => repo.read_commit(&c)?.body.metadata,
        None => Default::default(),
    };
    Ok(StatusReport {
        branch: head
            .branch
            .as_deref()
            .map(|b| b.trim_start_matches("heads/").to_string()),
        head: head.commit.map(|c| c.to_hex()),
        staged: compare(&head_flat, &idx),
        unstaged: compare(&idx, &wt.tracked),
        untracked: wt.untracked.into_keys().collect(),
        metadata_changed: repo.pending_metadata()? != head_meta,
    })
}
