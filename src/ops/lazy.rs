//! Lazy clones (`clone --lazy`): which tracked files a path names, which of them this clone
//! lacks, and dropping content again (`lode drop`) once a provider was found to hold it.
//! The network side (fetching, asking providers) is `net::fetch::lazy`.

use std::collections::{BTreeMap, HashSet};
use std::fs;

use crate::db::IndexEntry;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::repo::Repo;
use crate::worktree::under;

use super::add::remove_empty_parents;
use super::status::scan_worktree;

/// The tracked files (not directories or symlinks) under `paths`, from the index; fails
/// naming a path that matches none.
pub fn tracked_files(repo: &Repo, paths: &[String]) -> Result<BTreeMap<String, IndexEntry>> {
    let (index, _) = repo.load_index()?;
    let mut out = BTreeMap::new();
    for p in paths {
        let before = out.len();
        for (k, e) in &index {
            if under(k, p) && matches!(e.kind, EntryKind::File | EntryKind::Executable) {
                out.insert(k.clone(), e.clone());
            }
        }
        if out.len() == before && !index.keys().any(|k| under(k, p)) {
            return Err(Error::PathNotInRev {
                path: p.clone(),
                rev: "HEAD".into(),
            });
        }
    }
    Ok(out)
}

/// The content ids (with sizes) of the files under `paths` that the store lacks.
pub fn missing_content(repo: &Repo, paths: &[String]) -> Result<Vec<(ObjectId, u64)>> {
    let mut seen = HashSet::new();
    Ok(tracked_files(repo, paths)?
        .into_values()
        .filter(|e| !repo.store().has(&e.id) && seen.insert(e.id))
        .map(|e| (e.id, e.size))
        .collect())
}

/// What `lode drop` would free: the files under `paths` whose content is here.
pub struct DropPlan {
    /// path → its index entry, for every file to drop.
    pub files: BTreeMap<String, IndexEntry>,
    /// Files left as they are because another file that stays has the same content.
    pub shared: Vec<String>,
}

/// What `lode drop` freed.
#[derive(Debug, Default, serde::Serialize)]
pub struct DropReport {
    /// The paths whose content was dropped (now absent).
    pub dropped: Vec<String>,
    /// Paths kept: another file that stays has the same content.
    pub kept: Vec<String>,
    pub bytes_freed: u64,
}

/// Plans a drop: only in a lazy clone, and never of a file changed since it was checked
/// out or staged without a commit (its content may exist nowhere else). The caller holds
/// the writer lock.
pub fn plan_drop(repo: &Repo, paths: &[String]) -> Result<DropPlan> {
    if !crate::config::is_lazy(repo)? {
        return Err(Error::Other(
            "lode drop frees content in a lazy clone only (`lode clone --lazy`); this repository keeps every file's content".into(),
        ));
    }
    let wanted = tracked_files(repo, paths)?;
    let (index, index_time) = repo.load_index()?;
    let head = repo.head()?;
    let committed = repo.flatten_commit(head.commit.as_ref())?;
    repo.release_db();
    let wt = scan_worktree(repo, &index, index_time)?;
    let mut changed: Vec<String> = wanted
        .iter()
        .filter(|(p, e)| {
            wt.changed.contains_key(*p) || committed.get(*p).is_none_or(|c| c.id != e.id)
        })
        .map(|(p, _)| p.clone())
        .collect();
    if !changed.is_empty() {
        changed.sort();
        return Err(Error::Other(format!(
            "refusing to drop {} file(s) changed or staged since the last commit ({}…): their content may exist nowhere else; commit and push them, or `lode checkout HEAD PATH` to restore them",
            changed.len(),
            changed[0]
        )));
    }
    let present: BTreeMap<String, IndexEntry> = wanted
        .into_iter()
        .filter(|(_, e)| repo.store().has(&e.id))
        .collect();
    // Content another remaining (present) file uses stays, and so does that file.
    let staying: HashSet<ObjectId> = index
        .iter()
        .filter(|(p, e)| !present.contains_key(*p) && repo.store().has(&e.id))
        .map(|(_, e)| e.id)
        .collect();
    let (files, shared): (BTreeMap<_, _>, BTreeMap<_, _>) = present
        .into_iter()
        .partition(|(_, e)| !staying.contains(&e.id));
    Ok(DropPlan {
        files,
        shared: shared.into_keys().collect(),
    })
}

/// Drops what `plan` names: each working file (unchanged, as checked), then its content,
/// and records the file as absent. The caller holds the writer lock and has found a
/// provider holding every content.
pub fn apply_drop(repo: &Repo, plan: DropPlan) -> Result<DropReport> {
    let mut index: BTreeMap<String, IndexEntry> = repo.load_index()?.0.into();
    repo.release_db();
    let mut report = DropReport {
        kept: plan.shared,
        ..Default::default()
    };
    let mut freed = HashSet::new();
    let mut refs = None;
    for (p, e) in &plan.files {
        let abs = repo.abs(p);
        match fs::remove_file(&abs) {
            Ok(()) => remove_empty_parents(repo.root(), &abs),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("cannot remove", &abs, err)),
        }
        if let Some(entry) = index.get_mut(p) {
            entry.stat = None;
        }
        if freed.insert(e.id) {
            repo.store().remove_file(&e.id, &mut refs, &|_| false)?;
            report.bytes_freed += e.size;
        }
        report.dropped.push(p.clone());
    }
    super::replace_index(repo, &index)?;
    Ok(report)
}
