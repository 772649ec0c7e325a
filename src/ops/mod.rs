//! Repository operations, one module per family of commands. Each takes a [`crate::Repo`]
//! and options, and returns a report the CLI prints (as text or JSON).

pub mod access;
pub mod add;
pub mod checkout;
pub mod commit;
pub mod graph;
pub mod history;
pub mod lazy;
pub mod maintain;
pub mod meta;
pub mod sealed;
pub mod status;

use std::collections::BTreeMap;

use redb::ReadableTable;

use crate::db::{Index, IndexEntry, CONFIG, INDEX};
use crate::error::Result;
use crate::repo::Repo;

/// How close to the index write time a file's mtime must be for its stat cache entry to be
/// distrusted (the "racy git" problem: filesystem clocks are coarse).
const RACY_WINDOW_NS: i64 = 100_000_000;

/// Reports whether a cached stat can be trusted given the index write time.
fn racy(mtime_ns: i64, index_time: i64) -> bool {
    mtime_ns + RACY_WINDOW_NS >= index_time
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Writes index changes (`None` removes the path), best in path order, in one transaction
/// and stamps the index time. Callers sync the store first.
fn write_index<'a>(
    repo: &Repo,
    changes: impl IntoIterator<Item = (&'a str, Option<&'a IndexEntry>)>,
) -> Result<()> {
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let mut t = tx.open_table(INDEX)?;
        for (path, entry) in changes {
            match entry {
                Some(e) => {
                    t.insert(path, e.encode().as_slice())?;
                }
                None => {
                    t.remove(path)?;
                }
            }
        }
        stamp_index(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// Config key naming the tree the index equals, when known (set by commit and checkout,
/// cleared by every other index write): lets `status` skip reading HEAD's trees.
pub(crate) const INDEX_TREE: &str = "index-tree";

/// Records the index write time and forgets which tree the index equals.
fn stamp_index(tx: &redb::WriteTransaction) -> Result<()> {
    let mut config = tx.open_table(CONFIG)?;
    config.insert("index-time", &now_ns().to_le_bytes()[..])?;
    config.remove(INDEX_TREE)?;
    Ok(())
}

/// Teaches the stat cache the new stat of files whose content was found unchanged, when the
/// writer lock is free right now (a reading command never waits for it). Entries whose mtime
/// is too recent to be trusted are left out. Content and `index-tree` stay as they are.
fn refresh_stats(
    repo: &Repo,
    index: &Index,
    refreshed: &[(String, crate::store::Stat)],
) -> Result<()> {
    let now = now_ns();
    // Entries are refreshed one at a time in the transaction (no vector of every updated
    // entry: after a change of every file's ctime, a million of them).
    let fresh = refreshed
        .iter()
        .filter(|(_, st)| !racy(st.mtime_ns, now))
        .filter_map(|(p, st)| Some((p, index.get(p)?, st)));
    if fresh.clone().next().is_none() {
        return Ok(());
    }
    let Ok(_lock) = crate::db::WriteLock::acquire(&repo.lock_path(), std::time::Duration::ZERO)
    else {
        return Ok(());
    };
    // The index may have changed since it was read: only refresh entries that still hold
    // the same content.
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let mut t = tx.open_table(INDEX)?;
        for (p, old, st) in fresh {
            let current = t.get(p.as_str())?.map(|v| v.value().to_vec());
            if let Some(bytes) = current {
                if IndexEntry::decode(p, &bytes)?.id == old.id {
                    let e = IndexEntry {
                        stat: Some(*st),
                        ..old.clone()
                    };
                    t.insert(p.as_str(), e.encode().as_slice())?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Replaces the whole index in one transaction, writing only the entries that differ:
/// rewriting every entry of a big index makes redb copy the whole table (about 100 MB of
/// pages for 10,000 entries, for a checkout that changed one file).
fn replace_index(repo: &Repo, index: &BTreeMap<String, IndexEntry>) -> Result<()> {
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let mut t = tx.open_table(INDEX)?;
        let mut current = std::collections::HashMap::new();
        for item in t.iter()? {
            let (k, v) = item?;
            current.insert(k.value().to_string(), v.value().to_vec());
        }
        for path in current.keys() {
            if !index.contains_key(path) {
                t.remove(path.as_str())?;
            }
        }
        for (path, e) in index {
            let bytes = e.encode();
            if current.get(path) != Some(&bytes) {
                t.insert(path.as_str(), bytes.as_slice())?;
            }
        }
        stamp_index(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// Returns the parent of a repository path ("" for top-level paths).
fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}
