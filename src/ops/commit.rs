//! `commit`: turn the index into trees, sign a commit with the device key, move the branch.

use std::collections::BTreeMap;

use crate::db::{IndexEntry, CONFIG, REFS};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{Commit, CommitBody, EntryKind, Tree, TreeEntry};
use crate::repo::Repo;

/// What `commit` made.
#[derive(Debug, serde::Serialize)]
pub struct CommitReport {
    pub commit: String,
    pub tree: String,
    pub parent: Option<String>,
    pub files: u64,
    pub bytes: u64,
}

enum Node {
    Leaf(EntryKind, ObjectId, u64),
    Dir(BTreeMap<String, Node>),
}

/// Stores the trees for `index` and returns the root tree id and (file count, total size).
pub fn write_trees(
    repo: &Repo,
    index: &BTreeMap<String, IndexEntry>,
) -> Result<(ObjectId, u64, u64)> {
    let mut root: BTreeMap<String, Node> = BTreeMap::new();
    for (path, e) in index {
        let mut map = &mut root;
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                if e.kind == EntryKind::Dir {
                    map.entry(part.to_string())
                        .or_insert_with(|| Node::Dir(BTreeMap::new()));
                } else if map
                    .insert(part.to_string(), Node::Leaf(e.kind, e.id, e.size))
                    .is_some()
                {
                    return Err(Error::Db(format!(
                        "index holds both a file and a directory at {path:?}"
                    )));
                }
            } else {
                let node = map
                    .entry(part.to_string())
                    .or_insert_with(|| Node::Dir(BTreeMap::new()));
                map = match node {
                    Node::Dir(m) => m,
                    Node::Leaf(..) => {
                        return Err(Error::Db(format!(
                            "index holds both a file and a directory at {part:?} in {path:?}"
                        )))
                    }
                };
            }
        }
    }
    fn write(repo: &Repo, map: BTreeMap<String, Node>) -> Result<(ObjectId, u64, u64)> {
        let mut tree = Tree::default();
        let (mut files, mut bytes) = (0, 0);
        for (name, node) in map {
            let entry = match node {
                Node::Leaf(kind, id, size) => {
                    files += 1;
                    bytes += size;
                    TreeEntry {
                        name,
                        kind,
                        size,
                        id,
                    }
                }
                Node::Dir(children) => {
                    let (id, f, b) = write(repo, children)?;
                    files += f;
                    bytes += b;
                    TreeEntry {
                        name,
                        kind: EntryKind::Dir,
                        size: b,
                        id,
                    }
                }
            };
            tree.entries.push(entry);
        }
        Ok((repo.store().put_bytes(&tree.encode())?, files, bytes))
    }
    write(repo, root)
}

/// Records the index and the pending metadata as a new commit on HEAD.
pub fn commit(repo: &Repo, message: &str, allow_empty: bool) -> Result<CommitReport> {
    if message.trim().is_empty() {
        return Err(Error::EmptyMessage);
    }
    let _lock = repo.lock()?;
    let head = repo.head()?;
    let (index, _) = repo.load_index()?;
    let metadata = repo.pending_metadata()?;
    let (tree, files, bytes) = write_trees(repo, &index)?;
    if let Some(parent) = &head.commit {
        let p = repo.read_commit(parent)?;
        if p.body.tree == tree && p.body.metadata == metadata && !allow_empty {
            return Err(Error::NothingToCommit);
        }
    }
    let key = repo.device_key()?;
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let body = CommitBody {
        dataset: repo.dataset_id()?.to_bytes(),
        tree,
        parents: head.commit.into_iter().collect(),
        author: key.verifying_key().to_bytes(),
        time,
        message: message.to_string(),
        metadata,
        person: repo.home().person()?,
    };
    let commit = Commit::sign(body, &key);
    let id = repo.store().put_bytes(&commit.encode())?;
    repo.store().sync()?;
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let mut refs = tx.open_table(REFS)?;
        let hex = id.to_hex();
        match &head.branch {
            Some(b) => refs.insert(b.as_str(), hex.as_str())?,
            None => refs.insert("HEAD", hex.as_str())?,
        };
        let mut config = tx.open_table(CONFIG)?;
        config.remove("metadata")?;
        config.insert(super::INDEX_TREE, &tree.0[..])?;
    }
    tx.commit()?;
    Ok(CommitReport {
        commit: id.to_hex(),
        tree: tree.to_hex(),
        parent: head.commit.map(|c| c.to_hex()),
        files,
        bytes,
    })
}
