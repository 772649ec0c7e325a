//! A repository: a working tree plus `.lode/` (database, object store, temp files).
//!
//! [`Repo`] opens or creates one and offers the operations the commands are built from; the
//! operations themselves live in `ops` (add, status, commit, checkout, verify, gc...).
//!
//! Invariants: every change to refs, index and config is one redb transaction, made after
//! the objects it points at are stored and synced. Writers hold [`WriteLock`] throughout.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use redb::{ReadableTable, ReadableTableMetadata};

use crate::db::{self, Db, Index, IndexEntry, WriteLock, CONFIG, INDEX, REFS};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::keys::Home;
use crate::object::{Commit, EntryKind, Metadata, Tree, MAX_OBJECT_META_SIZE, MAX_TREE_SIZE};
use crate::store::Store;

/// The branch every repository starts with.
pub const MAIN: &str = "heads/main";

/// Tunables a command passes when opening a repository.
#[derive(Clone, Debug)]
pub struct RepoOptions {
    /// How long a writer waits for another writer, and anyone for the database.
    pub lock_timeout: Duration,
}

impl Default for RepoOptions {
    fn default() -> Self {
        RepoOptions {
            lock_timeout: Duration::from_secs(5),
        }
    }
}

/// A path of a flattened tree: what a commit (or the index) says is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlatEntry {
    pub kind: EntryKind,
    pub id: ObjectId,
    pub size: u64,
}

/// Where HEAD points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The branch ref (`heads/main`), or `None` when detached.
    pub branch: Option<String>,
    /// The commit, or `None` before the first commit.
    pub commit: Option<ObjectId>,
}

/// An opened repository.
pub struct Repo {
    root: PathBuf,
    dot: PathBuf,
    store: Store,
    home: Home,
    opts: RepoOptions,
    /// The database, opened on first use and kept for the command (each open of a redb file
    /// costs a header write and fsyncs); [`Repo::release_db`] closes it before long work so
    /// that other processes can use it meanwhile.
    db: Arc<Mutex<Option<Arc<Db>>>>,
    /// The format version this open upgraded the repository from, if it did.
    upgraded_from: Option<u32>,
}

impl Repo {
    /// Creates a repository in `dir` (made if missing) with a new dataset key.
    pub fn init(dir: &Path, home: Home, opts: RepoOptions) -> Result<Repo> {
        Repo::create(dir, home, opts, None)
    }

    /// Creates an empty repository for an existing dataset (a clone: no dataset key here).
    pub fn init_clone(
        dir: &Path,
        home: Home,
        opts: RepoOptions,
        dataset: [u8; 32],
    ) -> Result<Repo> {
        Repo::create(dir, home, opts, Some(dataset))
    }

    fn create(
        dir: &Path,
        home: Home,
        opts: RepoOptions,
        dataset: Option<[u8; 32]>,
    ) -> Result<Repo> {
        fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
        let root = dir
            .canonicalize()
            .map_err(|e| Error::io("cannot open", dir, e))?;
        let dot = root.join(".lode");
        if dot.exists() {
            return Err(Error::AlreadyRepo(root));
        }
        home.device_key()?;
        let dataset = match dataset {
            Some(d) => d,
            None => home.new_dataset_key()?.verifying_key().to_bytes(),
        };
        // Build `.lode` under a temp name and rename it, so a killed init leaves nothing
        // that looks like a repository.
        // A staging directory of a killed init or clone here holds nothing verified: remove it.
        crate::leftover::clean_init_dirs(&root);
        let staging = tempfile::Builder::new()
            .prefix(&format!(
                "{}{}-",
                crate::leftover::INIT_PREFIX,
                std::process::id()
            ))
            .tempdir_in(&root)
            .map_err(|e| Error::io("cannot create a temp directory in", &root, e))?;
        let sp = staging.path();
        let store = Store::new(sp.join("objects"), sp.join("tmp"));
        store
            .create()
            .map_err(|e| Error::io("cannot create object store in", sp, e))?;
        {
            let db = Db::create(&sp.join("lode.redb"))?;
            let tx = db.db.begin_write()?;
            tx.open_table(CONFIG)?.insert("dataset", &dataset[..])?;
            tx.open_table(REFS)?
                .insert("HEAD", format!("ref:{MAIN}").as_str())?;
            tx.commit()?;
        }
        let staged = staging.keep();
        fs::rename(&staged, &dot).map_err(|e| Error::io("cannot create", &dot, e))?;
        Repo::open_at(root, home, opts)
    }

    /// Finds the repository containing `start` (itself or a parent) and opens it.
    pub fn discover(start: &Path, home: Home, opts: RepoOptions) -> Result<Repo> {
        let start = start
            .canonicalize()
            .map_err(|e| Error::io("cannot open", start, e))?;
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if d.join(".lode").is_dir() {
                return Repo::open_at(d.to_path_buf(), home, opts);
            }
            dir = d.parent();
        }
        Err(Error::NotARepo(start))
    }

    fn open_at(root: PathBuf, home: Home, opts: RepoOptions) -> Result<Repo> {
        let dot = root.join(".lode");
        let store = Store::new(dot.join("objects"), dot.join("tmp"));
        let mut repo = Repo {
            root,
            dot,
            store,
            home,
            opts,
            db: Arc::new(Mutex::new(None)),
            upgraded_from: None,
        };
        let db = repo.db()?;
        let tx = db.db.begin_read()?;
        let format = db::get_config(&tx, "format")?;
        drop(tx);
        let version = format
            .as_deref()
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes);
        match (format.as_deref(), version) {
            (_, Some(v)) if v == db::FORMAT_VERSION => Ok(repo),
            (_, Some(v)) if db::UPGRADES_FROM.contains(&v) => {
                let tx = db.db.begin_write()?;
                tx.open_table(db::CONFIG)?
                    .insert("format", &db::FORMAT_VERSION.to_le_bytes()[..])?;
                tx.commit()?;
                drop(db);
                repo.upgraded_from = Some(v);
                Ok(repo)
            }
            (_, Some(v)) => Err(Error::DbCorrupt {
                path: repo.db_path(),
                msg: format!(
                    "format version {v} is newer than this lode reads ({}); upgrade lode",
                    db::FORMAT_VERSION
                ),
            }),
            (Some(b), None) => Err(Error::DbCorrupt {
                path: repo.db_path(),
                msg: format!("format version {b:?} is not one lode knows"),
            }),
            (None, _) => Err(Error::DbCorrupt {
                path: repo.db_path(),
                msg: "format version missing".into(),
            }),
        }
    }

    /// A view of this repository whose object writes land in the quarantine `dir` (made if
    /// missing): reads see the repository's objects and the quarantine's, the database is
    /// the same. Used to receive a push, whose objects enter the store only once it is
    /// accepted ([`Store::admit`]); deleting `dir` discards them.
    pub fn quarantined(&self, dir: &Path) -> Result<Repo> {
        Ok(Repo {
            root: self.root.clone(),
            dot: self.dot.clone(),
            store: self.store.quarantine(dir)?,
            home: self.home.clone(),
            opts: self.opts.clone(),
            // The same slot: one process opens a redb file once.
            db: self.db.clone(),
            upgraded_from: None,
        })
    }

    /// The format version this open upgraded the repository from (`None`: it was current).
    pub fn upgraded_from(&self) -> Option<u32> {
        self.upgraded_from
    }

    /// Where received pushes wait while they are checked (`gc` removes what a killed server
    /// left there).
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dot.join("quarantine")
    }

    /// Where `lode serve` keeps the outboards of the blobs over 16 KiB it has sent.
    pub fn outboards_dir(&self) -> PathBuf {
        self.dot.join("outboards")
    }

    /// The reachability index `lode serve` keeps of what this dataset publishes.
    pub fn serve_index_path(&self) -> PathBuf {
        self.dot.join("serve-index.redb")
    }

    /// Returns the working tree root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the object store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Returns the key directory.
    pub fn home(&self) -> &Home {
        &self.home
    }

    fn db_path(&self) -> PathBuf {
        self.dot.join("lode.redb")
    }

    /// Returns the database, opening it if needed (retrying while another process holds it).
    pub fn db(&self) -> Result<Arc<Db>> {
        let mut slot = self.db.lock().expect("no panic while held");
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let db = match Db::open(&self.db_path(), self.opts.lock_timeout) {
            Err(Error::Db(msg)) => {
                return Err(Error::DbCorrupt {
                    path: self.db_path(),
                    msg,
                })
            }
            other => Arc::new(other?),
        };
        *slot = Some(db.clone());
        Ok(db)
    }

    /// Closes the database until the next [`Repo::db`] call, so that other processes can
    /// open it during long work (walking or hashing a tree). Callers hold no `Db` then.
    pub fn release_db(&self) {
        self.db.lock().expect("no panic while held").take();
    }

    /// Takes the writer lock.
    /// Temp files a killed command left in `.lode/tmp` are removed then (see
    /// [`crate::leftover`]).
    ///
    /// The lock comes before the database, always: a holder of the lock may be waiting to
    /// open the database (`lode serve` signing a new head while the owner runs `lode add`),
    /// so when the lock is busy it is waited for with this handle's database closed.
    pub fn lock(&self) -> Result<WriteLock> {
        let lock = match WriteLock::acquire(&self.lock_path(), Duration::ZERO) {
            Err(Error::Locked { .. }) => {
                self.release_db();
                WriteLock::acquire(&self.lock_path(), self.opts.lock_timeout)?
            }
            other => other?,
        };
        crate::leftover::clean_tmp_dir(self.store.tmp_dir());
        Ok(lock)
    }

    /// Returns the path of the writer lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dot.join("lock")
    }

    /// Returns the dataset id (the dataset key's public key).
    pub fn dataset_id(&self) -> Result<VerifyingKey> {
        let db = self.db()?;
        let tx = db.db.begin_read()?;
        let bytes = db::get_config(&tx, "dataset")?.unwrap_or_default();
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::DbCorrupt {
            path: self.db_path(),
            msg: "dataset id missing".into(),
        })?;
        VerifyingKey::from_bytes(&arr).map_err(|_| Error::DbCorrupt {
            path: self.db_path(),
            msg: "bad dataset id".into(),
        })
    }

    /// Loads the device key that signs commits.
    pub fn device_key(&self) -> Result<SigningKey> {
        self.home.device_key()
    }

    /// Reads HEAD.
    pub fn head(&self) -> Result<Head> {
        let db = self.db()?;
        let tx = db.db.begin_read()?;
        let head = db::get_ref(&tx, "HEAD")?.unwrap_or_else(|| format!("ref:{MAIN}"));
        match head.strip_prefix("ref:") {
            Some(branch) => {
                let commit = db::get_ref(&tx, branch)?
                    .map(|h| self.parse_stored_id(&h))
                    .transpose()?;
                Ok(Head {
                    branch: Some(branch.to_string()),
                    commit,
                })
            }
            None => Ok(Head {
                branch: None,
                commit: Some(self.parse_stored_id(&head)?),
            }),
        }
    }

    fn parse_stored_id(&self, s: &str) -> Result<ObjectId> {
        s.parse().map_err(|_| Error::DbCorrupt {
            path: self.db_path(),
            msg: format!("ref value {s:?} is not a commit id"),
        })
    }

    /// Lists refs whose names start with `prefix` (`tags/`, `heads/`).
    pub fn refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let db = self.db()?;
        let tx = db.db.begin_read()?;
        let t = tx.open_table(REFS)?;
        let mut out = Vec::new();
        for item in t.range(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), self.parse_stored_id(v.value())?));
        }
        Ok(out)
    }

    /// Returns the commit of the `main` branch, if any.
    pub fn main(&self) -> Result<Option<ObjectId>> {
        Ok(self
            .refs(MAIN)?
            .into_iter()
            .find(|(n, _)| n == MAIN)
            .map(|(_, id)| id))
    }

    /// Reads and checks a commit object.
    pub fn read_commit(&self, id: &ObjectId) -> Result<Commit> {
        let bytes = self.store.read_verified(id, MAX_OBJECT_META_SIZE)?;
        Commit::decode(&bytes).map_err(|e| Error::BadObject {
            id: *id,
            what: "commit",
            msg: e.to_string(),
        })
    }

    /// Reads and checks a tree object.
    pub fn read_tree(&self, id: &ObjectId) -> Result<Tree> {
        let bytes = self.store.read_verified(id, MAX_TREE_SIZE)?;
        Tree::decode(&bytes).map_err(|e| Error::BadObject {
            id: *id,
            what: "tree",
            msg: e.to_string(),
        })
    }

    /// Flattens a tree into `path -> entry`; empty directories appear as `Dir` entries.
    pub fn flatten(&self, tree: &ObjectId) -> Result<BTreeMap<String, FlatEntry>> {
        let mut out = BTreeMap::new();
        self.flatten_into(tree, "", &mut out)?;
        Ok(out)
    }

    fn flatten_into(
        &self,
        tree: &ObjectId,
        prefix: &str,
        out: &mut BTreeMap<String, FlatEntry>,
    ) -> Result<()> {
        let t = self.read_tree(tree)?;
        if t.entries.is_empty() && !prefix.is_empty() {
            out.insert(
                prefix.to_string(),
                FlatEntry {
                    kind: EntryKind::Dir,
                    id: *tree,
                    size: 0,
                },
            );
        }
        for e in t.entries {
            let path = if prefix.is_empty() {
                e.name
            } else {
                format!("{prefix}/{}", e.name)
            };
            if e.kind == EntryKind::Dir {
                self.flatten_into(&e.id, &path, out)?;
            } else {
                out.insert(
                    path,
                    FlatEntry {
                        kind: e.kind,
                        id: e.id,
                        size: e.size,
                    },
                );
            }
        }
        Ok(())
    }

    /// Flattens the tree of a commit, or returns an empty map for `None`.
    pub fn flatten_commit(&self, commit: Option<&ObjectId>) -> Result<BTreeMap<String, FlatEntry>> {
        match commit {
            Some(c) => self.flatten(&self.read_commit(c)?.body.tree),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Loads the whole staging index and the time it was last written (ns since the epoch).
    pub fn load_index(&self) -> Result<(Index, i64)> {
        let db = self.db()?;
        let tx = db.db.begin_read()?;
        let t = tx.open_table(INDEX)?;
        // redb yields keys in order: the index is that vector, sized once.
        let mut entries = Vec::with_capacity(usize::try_from(t.len()?).unwrap_or(0));
        index_rows(&t, |path, e| {
            entries.push((path.to_string(), e));
            Ok(())
        })?;
        let out = Index::from_sorted(entries);
        let time = db::get_config(&tx, "index-time")?
            .and_then(|b| b.try_into().ok().map(i64::from_le_bytes))
            .unwrap_or(0);
        Ok((out, time))
    }

    /// Hands each staged path and its entry to `f`, in path order, without loading the
    /// index whole (`commit` writes its trees so).
    pub fn each_index_entry(&self, f: impl FnMut(&str, IndexEntry) -> Result<()>) -> Result<()> {
        let db = self.db()?;
        let tx = db.db.begin_read()?;
        index_rows(&tx.open_table(INDEX)?, f)
    }

    /// Returns the metadata the next commit will record.
    pub fn pending_metadata(&self) -> Result<Metadata> {
        let stored = {
            let db = self.db()?;
            let tx = db.db.begin_read()?;
            db::get_config(&tx, "metadata")?
        };
        match stored {
            Some(b) => postcard::from_bytes(&b).map_err(|e| Error::DbCorrupt {
                path: self.db_path(),
                msg: e.to_string(),
            }),
            None => match self.head()?.commit {
                Some(c) => Ok(self.read_commit(&c)?.body.metadata),
                None => Ok(Metadata::default()),
            },
        }
    }

    /// Converts a user path (relative to `cwd`, or absolute) to a repository path, refusing
    /// paths outside the working tree or inside `.lode`.
    pub fn repo_path(&self, cwd: &Path, arg: &Path) -> Result<String> {
        let joined = if arg.is_absolute() {
            arg.to_path_buf()
        } else {
            cwd.join(arg)
        };
        let mut norm = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir => {
                    norm.pop();
                }
                Component::CurDir => {}
                other => norm.push(other),
            }
        }
        // Resolve symlinks in the directories above the path (not the path itself, which
        // may be a symlink to record), so `cd` through a symlink still works.
        let resolved = match (norm.parent(), norm.file_name()) {
            (Some(parent), Some(name)) => match parent.canonicalize() {
                Ok(p) => p.join(name),
                Err(_) => norm.clone(),
            },
            _ => norm.clone(),
        };
        let rel = resolved
            .strip_prefix(&self.root)
            .map_err(|_| Error::OutsideRepo {
                path: arg.to_path_buf(),
                root: self.root.clone(),
            })?;
        let s = rel
            .to_str()
            .ok_or_else(|| Error::NonUtf8Name(arg.to_path_buf()))?;
        if s.split('/').any(crate::object::is_control_name) {
            return Err(Error::InsideLodeDir(arg.to_path_buf()));
        }
        Ok(s.to_string())
    }

    /// Returns the absolute path of a repository path.
    pub fn abs(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }
}

/// Decodes the rows of the index table in path order, handing each to `f`.
fn index_rows(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    mut f: impl FnMut(&str, IndexEntry) -> Result<()>,
) -> Result<()> {
    for item in table.iter()? {
        let (k, v) = item?;
        f(k.value(), IndexEntry::decode(k.value(), v.value())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that opened the database and then waits for the lock must not keep the
    /// database from the lock's holder (`lode add` while `lode serve` signs a head): it
    /// waits with its database closed, so both finish instead of timing out.
    #[test]
    fn waiting_for_the_lock_leaves_the_database_to_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("home"));
        let opts = RepoOptions {
            lock_timeout: Duration::from_secs(3),
        };
        let root = dir.path().join("ds");
        fs::create_dir(&root).unwrap();
        Repo::init(&root, home.clone(), opts.clone()).unwrap();
        let holder = Repo::discover(&root, home.clone(), opts.clone()).unwrap();
        holder.release_db();
        let waiter = Repo::discover(&root, home, opts).unwrap();
        let (taken, go) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || -> Result<()> {
            let _lock = holder.lock()?;
            taken.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            // Opens the database while the waiter waits for the lock.
            holder.main()?;
            Ok(())
        });
        go.recv().unwrap();
        waiter.main().unwrap();
        let lock = waiter.lock();
        t.join().unwrap().unwrap();
        assert!(lock.is_ok(), "{:?}", lock.err());
    }
}
