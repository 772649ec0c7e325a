//! The graph walk: which objects a dataset's refs reach. Serving, pushing, mirroring and
//! sealing all walk the same way; `verify` and `gc` keep their own walk, which also records
//! the path of each object and the damage it finds.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::repo::Repo;
use crate::trust::SignedHead;

/// A dataset's published refs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refs {
    /// The commit of the `main` branch, if any.
    pub head: Option<ObjectId>,
    /// Tags, by name.
    pub tags: Vec<(String, ObjectId)>,
}

impl Refs {
    /// Returns the commits the refs name: `main`, then the tags.
    pub fn roots(&self) -> Vec<ObjectId> {
        self.head
            .iter()
            .copied()
            .chain(self.tags.iter().map(|(_, id)| *id))
            .collect()
    }
}

/// The head's refs as a [`Refs`].
pub fn head_refs(head: Option<&SignedHead>) -> Refs {
    match head {
        None => Refs::default(),
        Some(h) => Refs {
            head: h.body.main.map(ObjectId),
            tags: h
                .body
                .tags
                .iter()
                .map(|(n, id)| (n.clone(), ObjectId(*id)))
                .collect(),
        },
    }
}

/// Lists the objects reachable from `roots` that `known` does not accept, with blob sizes (0
/// for commits and trees). The walk does not enter a commit or tree that is known: whoever
/// knows it knows what it reaches. A file held in chunks is listed with what may travel for
/// it: its whole-file id, its chunk map and its chunks.
pub fn closure(
    repo: &Repo,
    roots: &[ObjectId],
    known: &dyn Fn(&ObjectId) -> bool,
) -> Result<Vec<(ObjectId, u64)>> {
    walk(repo, roots, known, true)
}

/// [`closure`], with every file listed by its whole-file id (what sealing encrypts).
pub fn file_closure(
    repo: &Repo,
    roots: &[ObjectId],
    known: &dyn Fn(&ObjectId) -> bool,
) -> Result<Vec<(ObjectId, u64)>> {
    walk(repo, roots, known, false)
}

fn walk(
    repo: &Repo,
    roots: &[ObjectId],
    known: &dyn Fn(&ObjectId) -> bool,
    chunks: bool,
) -> Result<Vec<(ObjectId, u64)>> {
    let mut out = Vec::new();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut commits: Vec<ObjectId> = roots.to_vec();
    let mut trees = Vec::new();
    while let Some(c) = commits.pop() {
        if known(&c) || !seen.insert(c) {
            continue;
        }
        let commit = repo.read_commit(&c)?;
        out.push((c, 0));
        commits.extend(commit.body.parents.iter().copied());
        trees.push(commit.body.tree);
    }
    while let Some(t) = trees.pop() {
        if known(&t) || !seen.insert(t) {
            continue;
        }
        out.push((t, 0));
        // A tree this build cannot decode is served as an opaque object: the receiver checks
        // it (and refuses it) itself.
        let Ok(tree) = repo.read_tree(&t) else {
            continue;
        };
        for e in tree.entries {
            if e.kind == EntryKind::Dir {
                trees.push(e.id);
            } else if let (true, Some(map)) = (chunks, e.chunks) {
                if known(&e.id) || !seen.insert(e.id) {
                    continue;
                }
                // The whole file too: a peer holding none of its chunks fetches it whole
                // (the server assembles it from the chunks).
                out.push((e.id, e.size));
                if known(&map) || !seen.insert(map) {
                    continue;
                }
                // A map this repository does not hold (a lazy clone) is listed alone.
                let Ok(m) = repo.store().read_chunk_map(&map) else {
                    out.push((map, 0));
                    continue;
                };
                out.push((map, repo.store().size_of(&map).unwrap_or(0)));
                for (c, len) in m.chunks {
                    if !known(&c) && seen.insert(c) {
                        out.push((c, u64::from(len)));
                    }
                }
            } else if !known(&e.id) && seen.insert(e.id) {
                out.push((e.id, e.size));
            }
        }
    }
    Ok(out)
}

/// Accepts nothing: [`closure`] lists everything the roots reach.
pub fn nothing_known(_: &ObjectId) -> bool {
    false
}
