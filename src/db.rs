//! The repository database (`.lode/lode.redb`): refs, the staging index and config, in
//! versioned redb tables; and the writer lock (`.lode/lock`).
//!
//! Concurrency: redb lets one process open a database at a time, so every command opens it
//! only for the length of one transaction and retries briefly while another process holds it
//! ([`Db::open`]). Commands that write take the writer lock for their whole run first
//! ([`WriteLock`]); a second writer waits up to the lock timeout, then fails with a message
//! naming the holder. Readers never take the writer lock, so `status`, `log` and `ls` keep
//! working while `add` runs.

use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};

use crate::error::{Error, Result};
use crate::object::EntryKind;
use crate::store::Stat;
use crate::ObjectId;

/// `name -> value`: `HEAD` (`ref:heads/main` or a commit id), `heads/NAME`, `tags/NAME`.
pub const REFS: TableDefinition<&str, &str> = TableDefinition::new("refs-v1");
/// Repository path (`/`-separated, relative) -> postcard-encoded [`IndexEntry`].
pub const INDEX: TableDefinition<&str, &[u8]> = TableDefinition::new("index-v1");
/// Settings and state: `format`, `dataset`, `metadata` (pending), `index-time`.
pub const CONFIG: TableDefinition<&str, &[u8]> = TableDefinition::new("config-v1");

/// redb's page cache, for reads and for the pages a write transaction holds before it
/// commits. redb's default (1 GiB) lets a command over a big index keep every page it
/// touched: at 100,000 files that was a fifth of `status`'s and `add`'s peak heap. The
/// commands read the index once, in order, so a small cache costs no time: 4 MiB took
/// another 4 MiB off `status` and `commit` of a flat directory of 100,000 files against
/// 8 MiB, at the same times (docs/PERFORMANCE.md).
const CACHE_SIZE: usize = 4 << 20;

/// The on-disk format version this build writes and reads. Version 2 (chunked files: trees
/// `LODT\x02`, chunk maps, links `objects/ab/<rest>.chunks`) reads version 1 unchanged; a
/// version-1 repository is upgraded when this build opens it, since a build that knows only
/// version 1 would take chunks for unreachable objects and `gc` them. Version 3 adds packs
/// (`objects/pack/`), which a version-2 build would not see: it would call their objects
/// missing.
pub const FORMAT_VERSION: u32 = 3;
/// The formats this build upgrades in place (nothing on disk changes but the number).
pub const UPGRADES_FROM: &[u32] = &[1, 2];

/// One staged path: what the next commit records, plus the stat cache.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexEntry {
    /// `File`, `Executable`, `Symlink`, or `Dir` for an empty directory.
    pub kind: EntryKind,
    pub id: ObjectId,
    pub size: u64,
    pub stat: Option<Stat>,
}

impl IndexEntry {
    /// Encodes for the index table.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("postcard encodes in-memory values")
    }

    /// Decodes from the index table.
    pub fn decode(path: &str, bytes: &[u8]) -> Result<IndexEntry> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::Db(format!("index entry {path:?} is malformed: {e}")))
    }
}

/// The staging index in memory: its entries sorted by path (as redb yields them), in one
/// vector sized once. A map of the same entries cost twice the memory while it was built
/// from them; lookups are binary searches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    entries: Vec<(String, IndexEntry)>,
}

impl Index {
    /// Makes an index of entries sorted by path, without duplicates.
    pub fn from_sorted(entries: Vec<(String, IndexEntry)>) -> Index {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        Index { entries }
    }

    /// The entry of `path`.
    pub fn get(&self, path: &str) -> Option<&IndexEntry> {
        self.position(path).map(|i| &self.entries[i].1)
    }

    /// Where `path` stands in path order, if staged (see [`Index::at`]).
    pub fn position(&self, path: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()
    }

    /// Like [`Index::position`], searching from the position after `hint` onwards first,
    /// in steps that double (a walk in path order finds most paths there or a few entries
    /// on, as does one through the sorted parts of a large directory), then everywhere.
    pub fn position_after(&self, hint: usize, path: &str) -> Option<usize> {
        let start = hint.wrapping_add(1);
        let key = |i: usize| self.entries[i].0.as_str();
        if start >= self.entries.len() || key(start) > path {
            return self.position(path);
        }
        // entries[lo] <= path; find hi with entries[hi] > path (or the end).
        let (mut lo, mut step) = (start, 1);
        let hi = loop {
            let probe = lo + step;
            if probe >= self.entries.len() {
                break self.entries.len();
            }
            if key(probe) > path {
                break probe;
            }
            lo = probe;
            step *= 2;
        };
        self.entries[lo..hi]
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()
            .map(|i| lo + i)
    }

    /// The entry at position `i` of path order.
    pub fn at(&self, i: usize) -> (&str, &IndexEntry) {
        let (p, e) = &self.entries[i];
        (p, e)
    }

    /// Whether `path` is staged.
    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The entries in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &IndexEntry)> {
        self.entries.iter().map(|(p, e)| (p, e))
    }

    /// The paths in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(p, _)| p)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> IntoIterator for &'a Index {
    type Item = (&'a String, &'a IndexEntry);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, IndexEntry)>,
        fn(&'a (String, IndexEntry)) -> (&'a String, &'a IndexEntry),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(p, e)| (p, e))
    }
}

impl From<Index> for std::collections::BTreeMap<String, IndexEntry> {
    fn from(index: Index) -> Self {
        index.entries.into_iter().collect()
    }
}

/// An open repository database, held for one short stretch of work.
pub struct Db {
    pub db: Database,
}

impl Db {
    /// Opens the database, retrying while another process holds it, for up to `timeout`.
    pub fn open(path: &Path, timeout: Duration) -> Result<Db> {
        let start = Instant::now();
        loop {
            match open_guarded(path) {
                Ok(db) => return Ok(Db { db }),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(Error::DbBusy(path.to_path_buf()))
                }
                Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                    if e.kind() == std::io::ErrorKind::PermissionDenied
                        || crate::error::too_many_files(&e) =>
                {
                    return Err(Error::io("cannot open repository database", path, e))
                }
                Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(msg))) => {
                    return Err(Error::DbCorrupt {
                        path: path.to_path_buf(),
                        msg,
                    })
                }
                Err(e) => {
                    return Err(Error::DbCorrupt {
                        path: path.to_path_buf(),
                        msg: format!("{e}; {}", damaged(path)),
                    })
                }
            }
        }
    }

    /// Creates a new database with empty tables. The file is made mode 0600 whatever the
    /// umask: it holds epoch secrets of restricted datasets and the capability tickets this
    /// device presents.
    pub fn create(path: &Path) -> Result<Db> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("cannot create repository database", path, e))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("cannot set the permissions of", path, e))?;
        drop(f);
        let db = Database::builder()
            .set_cache_size(CACHE_SIZE)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Io(e))
                    if crate::error::too_many_files(&e) =>
                {
                    Error::io("cannot create repository database", path, e)
                }
                e => Error::DbCorrupt {
                    path: path.to_path_buf(),
                    msg: e.to_string(),
                },
            })?;
        let tx = db.begin_write()?;
        tx.open_table(REFS)?;
        tx.open_table(INDEX)?;
        tx.open_table(CONFIG)?
            .insert("format", &FORMAT_VERSION.to_le_bytes()[..])?;
        tx.commit()?;
        Ok(Db { db })
    }
}

thread_local! {
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True while this thread opens a database file: a panic then is a damaged file (redb
/// asserts on some truncated files), caught and reported as such, and a panic hook should
/// print nothing for it.
pub fn opening_guarded() -> bool {
    GUARDED.with(|g| g.get())
}

/// Opens a redb file, turning a panic inside redb (some damaged files trip its assertions,
/// e.g. a file truncated below the length its header records) into an error.
fn open_guarded(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    GUARDED.with(|g| g.set(true));
    let r = std::panic::catch_unwind(|| Database::builder().set_cache_size(CACHE_SIZE).open(path));
    GUARDED.with(|g| g.set(false));
    r.unwrap_or_else(|_| {
        Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(
            damaged(path),
        )))
    })
}

/// What is said of a database file whose structure is inconsistent.
fn damaged(path: &Path) -> String {
    match fs::metadata(path) {
        Ok(m) => format!(
            "the file is damaged ({} bytes; truncated or overwritten?)",
            m.len()
        ),
        Err(_) => "the file is missing".into(),
    }
}

/// Reads one config value in a read transaction.
pub fn get_config(tx: &redb::ReadTransaction, key: &str) -> Result<Option<Vec<u8>>> {
    let t = tx.open_table(CONFIG)?;
    Ok(t.get(key)?.map(|v| v.value().to_vec()))
}

/// Reads one ref in a read transaction.
pub fn get_ref(tx: &redb::ReadTransaction, name: &str) -> Result<Option<String>> {
    let t = tx.open_table(REFS)?;
    Ok(t.get(name)?.map(|v| v.value().to_string()))
}

/// Holds the exclusive writer lock of a repository until dropped.
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Takes the lock, waiting up to `timeout` for another writer to finish.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<WriteLock> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("cannot open lock file", path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = match holder.trim() {
                        "" => "another process".to_string(),
                        pid => format!("pid {pid}"),
                    };
                    return Err(Error::Locked {
                        path: lock_repo(path),
                        holder,
                    });
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::io("cannot lock", path, e));
                }
            }
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(WriteLock { _file: file })
    }
}

fn lock_repo(lock: &Path) -> PathBuf {
    lock.parent()
        .and_then(Path::parent)
        .unwrap_or(lock)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_found_after_any_hint_even_none_or_a_wrong_one() {
        let entry = IndexEntry {
            kind: EntryKind::File,
            id: ObjectId([0; 32]),
            size: 0,
            stat: None,
        };
        let index = Index::from_sorted(
            ["a", "b/c", "b/d", "e"]
                .iter()
                .map(|p| (p.to_string(), entry.clone()))
                .collect(),
        );
        // No hint yet (the first path of a walk), the right one, a wrong one, past the end.
        assert_eq!(index.position_after(usize::MAX, "a"), Some(0));
        assert_eq!(index.position_after(1, "b/d"), Some(2));
        assert_eq!(index.position_after(0, "e"), Some(3));
        assert_eq!(index.position_after(3, "b/c"), Some(1));
        assert_eq!(index.position_after(usize::MAX, "zz"), None);
        assert_eq!(index.position_after(2, "b"), None);
        // Every hint, every path present or not, on an index with gaps: the same answer as
        // the plain search.
        let index = Index::from_sorted(
            (0..300)
                .map(|i| (format!("f{:04}", i * 3), entry.clone()))
                .collect(),
        );
        for hint in (0..300).chain([usize::MAX]) {
            for n in 0..905 {
                let path = format!("f{n:04}");
                assert_eq!(
                    index.position_after(hint, &path),
                    index.position(&path),
                    "{hint} {path}"
                );
            }
        }
    }
}
