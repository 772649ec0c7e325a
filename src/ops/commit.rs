//! `commit`: turn the index into trees, sign a commit with the device key, move the branch.

use crate::db::{IndexEntry, CONFIG, REFS};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{encode_tree, Commit, CommitBody, EntryKind, EntryRef, Tree};
use crate::repo::Repo;
use crate::worktree::under;

/// What `commit` made.
#[derive(Debug, serde::Serialize)]
pub struct CommitReport {
    pub commit: String,
    pub tree: String,
    pub parent: Option<String>,
    pub files: u64,
    pub bytes: u64,
}

/// One directory being written: the entries met so far, and the files and bytes below it.
/// Entries are compact rows whose names share one buffer: 56 bytes and no allocation each,
/// where a `TreeEntry` costs ~140 (a flat directory of a million files: 60 MB, not 140).
struct OpenDir {
    path: String,
    names: String,
    rows: Vec<Row>,
    /// The chunk maps that rows name (few: only large files have one).
    maps: Vec<ObjectId>,
    files: u64,
    bytes: u64,
}

/// One entry of an open directory.
struct Row {
    /// The name, as `names[start..end]` of its directory.
    name: (u32, u32),
    kind: EntryKind,
    size: u64,
    id: ObjectId,
    /// Its chunk map, as an index into the directory's `maps`, or [`NO_MAP`].
    map: u32,
}

const NO_MAP: u32 = u32::MAX;

impl OpenDir {
    fn new(path: String) -> OpenDir {
        OpenDir {
            path,
            names: String::new(),
            rows: Vec::new(),
            maps: Vec::new(),
            files: 0,
            bytes: 0,
        }
    }

    fn push(
        &mut self,
        name: &str,
        kind: EntryKind,
        size: u64,
        id: ObjectId,
        chunks: Option<ObjectId>,
    ) -> Result<()> {
        let start = self.names.len();
        self.names.push_str(name);
        let (Ok(start), Ok(end), Ok(map)) = (
            u32::try_from(start),
            u32::try_from(self.names.len()),
            u32::try_from(self.maps.len()),
        ) else {
            return Err(Error::Other(format!(
                "directory {:?} has too many entries to write as one tree",
                self.path
            )));
        };
        let map = match chunks {
            Some(c) => {
                self.maps.push(c);
                map
            }
            None => NO_MAP,
        };
        self.rows.push(Row {
            name: (start, end),
            kind,
            size,
            id,
            map,
        });
        Ok(())
    }

    fn name(&self, r: &Row) -> &str {
        &self.names[r.name.0 as usize..r.name.1 as usize]
    }
}

/// Writes the trees of index paths met in order, as it goes: only the directories on the
/// path of the current entry are open, each holding its own entries; a directory is sorted,
/// encoded and stored as soon as the paths leave it. So memory holds one directory per
/// level, not a second copy of the whole index.
///
/// Paths in index order are not in tree order (`a.txt` sorts before `a/b`, but the tree of
/// the root lists `a` before `a.txt`), so a closed directory's entries are sorted by name.
struct TreeWriter<'r> {
    repo: &'r Repo,
    open: Vec<OpenDir>,
    /// The id of the empty tree, once stored (for empty directories staged as such).
    empty: Option<ObjectId>,
}

impl<'r> TreeWriter<'r> {
    fn new(repo: &'r Repo) -> Self {
        TreeWriter {
            repo,
            open: vec![OpenDir::new(String::new())],
            empty: None,
        }
    }

    /// Adds the index entry of `path`; paths come in index (byte) order.
    fn add(&mut self, path: &str, e: &IndexEntry) -> Result<()> {
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        while !under(dir, &self.open.last().expect("the root stays open").path) {
            self.close()?;
        }
        // Open the directories between the innermost open one and `dir`.
        let top = self.open.last().expect("the root stays open").path.len();
        if dir.len() > top {
            let mut at = if top == 0 { 0 } else { top + 1 };
            loop {
                let end = dir[at..].find('/').map_or(dir.len(), |i| at + i);
                self.open.push(OpenDir::new(dir[..end].to_string()));
                if end == dir.len() {
                    break;
                }
                at = end + 1;
            }
        }
        let (id, chunks) = if e.kind == EntryKind::Dir {
            // An empty directory staged as such: the empty tree (dropped when the same
            // directory also has entries, see `finish_dir`).
            let id = match self.empty {
                Some(id) => id,
                None => {
                    let id = self.repo.store().put_bytes(&Tree::default().encode())?;
                    *self.empty.insert(id)
                }
            };
            (id, None)
        } else if e.kind == EntryKind::Symlink {
            (e.id, None)
        } else {
            // A file the store holds in chunks names its chunk map, so that peers fetch only
            // the chunks they lack.
            (e.id, self.repo.store().chunk_map_of(&e.id, e.size)?)
        };
        let d = self.open.last_mut().expect("the root stays open");
        if e.kind != EntryKind::Dir {
            d.files += 1;
            d.bytes += e.size;
        }
        d.push(name, e.kind, e.size, id, chunks)
    }

    /// Sorts, encodes and stores the innermost open directory; returns it and its id.
    fn finish_dir(&mut self) -> Result<(OpenDir, ObjectId)> {
        let mut d = self.open.pop().expect("a directory is open");
        let mut rows = std::mem::take(&mut d.rows);
        rows.sort_by(|a, b| d.name(a).as_bytes().cmp(d.name(b).as_bytes()));
        // Two entries of one name: a directory that is also staged as empty (keep the
        // directory with content), or a file and a directory (an index that cannot be).
        let mut i = 1;
        while i < rows.len() {
            let (a, b) = (&rows[i - 1], &rows[i]);
            if d.name(a) == d.name(b) {
                let empty = Some(a.id) == self.empty || Some(b.id) == self.empty;
                if a.kind == EntryKind::Dir && b.kind == EntryKind::Dir && empty {
                    let drop = if Some(a.id) == self.empty { i - 1 } else { i };
                    rows.remove(drop);
                    continue;
                }
                let at = if d.path.is_empty() {
                    d.name(a).to_string()
                } else {
                    format!("{}/{}", d.path, d.name(a))
                };
                return Err(Error::Db(format!(
                    "index holds both a file and a directory at {at:?}"
                )));
            }
            i += 1;
        }
        let entries = rows.iter().map(|r| EntryRef {
            name: d.name(r),
            kind: r.kind,
            size: r.size,
            id: r.id,
            chunks: (r.map != NO_MAP).then(|| d.maps[r.map as usize]),
        });
        let id = self.repo.store().put_bytes(&encode_tree(entries))?;
        Ok((d, id))
    }

    /// Closes the innermost open directory into its parent's entries.
    fn close(&mut self) -> Result<()> {
        let (d, id) = self.finish_dir()?;
        let name = d.path.rsplit('/').next().unwrap_or(&d.path);
        let parent = self.open.last_mut().expect("the root stays open");
        parent.files += d.files;
        parent.bytes += d.bytes;
        parent.push(name, EntryKind::Dir, d.bytes, id, None)
    }

    /// Closes every directory and returns the root tree id, file count and total size.
    fn finish(mut self) -> Result<(ObjectId, u64, u64)> {
        while self.open.len() > 1 {
            self.close()?;
        }
        let (root, id) = self.finish_dir()?;
        Ok((id, root.files, root.bytes))
    }
}

/// Stores the trees of the index and returns the root tree id and (file count, total size).
/// The index is read from the database entry by entry, in order, never loaded whole: with
/// the [`TreeWriter`], memory holds one directory per level.
pub fn write_trees(repo: &Repo) -> Result<(ObjectId, u64, u64)> {
    let mut w = TreeWriter::new(repo);
    repo.each_index_entry(|path, e| w.add(path, &e))?;
    w.finish()
}

/// Records the index and the pending metadata as a new commit on HEAD.
pub fn commit(repo: &Repo, message: &str, allow_empty: bool) -> Result<CommitReport> {
    if message.trim().is_empty() {
        return Err(Error::EmptyMessage);
    }
    let _lock = repo.lock()?;
    let head = repo.head()?;
    let metadata = repo.pending_metadata()?;
    let (tree, files, bytes) = write_trees(repo)?;
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
