//! What a served dataset publishes, kept on disk: the ids of every object reachable from the
//! heads this server has published (`.lode/serve-index.redb`, one per repository, opened only
//! by the process that serves it). The blob gatekeeper asks it one id at a time, so a server
//! holds nothing per object in memory, and a restart finds it up to date: start-up reads the
//! head and compares it with the one the index was brought up to, and walks nothing when they
//! match. A new head adds only what it reaches beyond the index (the walk stops at every
//! commit and tree already indexed: an indexed tree's whole subtree is indexed, because one
//! write transaction adds a walk's objects together).
//!
//! The index only grows while the dataset stays public (or stays restricted): what a head
//! published once stays servable until its bytes are deleted (`gc`, a mirror's quota, a taint
//! notice — a deleted object cannot be sent whatever the index says). It is rebuilt from
//! scratch when the dataset turns private or public, and on a reload (after a mirror deleted
//! objects). It is a cache: a damaged or newer-format file is deleted and built again.

use std::path::Path;

use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::ops::access::published_closure;
use crate::ops::graph::head_refs;
use crate::progress::Progress;
use crate::repo::Repo;
use crate::trust::SignedHead;

const REACH: TableDefinition<&[u8; 32], ()> = TableDefinition::new("reach-v1");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-v1");
const INDEXED: &str = "indexed";

/// What the index was last brought up to: the refs of the head and whether it was private.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Indexed {
    private: bool,
    roots: Vec<[u8; 32]>,
}

/// The reachability index of one served repository.
pub struct Reach {
    db: Database,
}

impl Reach {
    /// Opens (or creates) the index at `path`; a file that cannot be opened as an index is
    /// replaced by an empty one.
    pub fn open(path: &Path) -> Result<Reach> {
        let open = || {
            std::panic::catch_unwind(|| Database::builder().set_cache_size(16 << 20).create(path))
        };
        let db = match open() {
            Ok(Ok(db)) => db,
            Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(Error::Other(format!(
                    "{} is open in another process",
                    path.display()
                )))
            }
            _ => {
                std::fs::remove_file(path)
                    .map_err(|e| Error::io("cannot replace the damaged index", path, e))?;
                match open() {
                    Ok(Ok(db)) => db,
                    Ok(Err(e)) => return Err(index_error(path, e)),
                    Err(_) => {
                        return Err(Error::Other(format!("cannot create {}", path.display())))
                    }
                }
            }
        };
        Ok(Reach { db })
    }

    /// Whether the dataset published `id`.
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        let Ok(tx) = self.db.begin_read() else {
            return false;
        };
        let Ok(table) = tx.open_table(REACH) else {
            return false;
        };
        matches!(table.get(id), Ok(Some(_)))
    }

    fn indexed(&self) -> Option<Indexed> {
        let tx = self.db.begin_read().ok()?;
        let table = tx.open_table(META).ok()?;
        let bytes = table.get(INDEXED).ok()??;
        postcard::from_bytes(bytes.value()).ok()
    }

    /// Brings the index up to `head` (what `repo` publishes with it); `rebuild` empties it
    /// first. Walks only what the index lacks; reports each object examined to `progress`.
    pub fn update(
        &self,
        repo: &Repo,
        head: Option<&SignedHead>,
        private: bool,
        rebuild: bool,
        progress: &dyn Progress,
    ) -> Result<()> {
        let want = Indexed {
            private,
            roots: head_refs(head).roots().iter().map(|id| id.0).collect(),
        };
        let have = self.indexed();
        if !rebuild && have.as_ref() == Some(&want) {
            return Ok(());
        }
        let rebuild = rebuild || have.is_some_and(|h| h.private != private);
        let mut new = {
            let tx = self.db.begin_read().map_err(|e| self.error(e))?;
            let table = match tx.open_table(REACH) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(self.error(e)),
            };
            progress.scan("indexing");
            let known = |id: &ObjectId| {
                progress.file_done();
                !rebuild
                    && table
                        .as_ref()
                        .is_some_and(|t| matches!(t.get(&id.0), Ok(Some(_))))
            };
            published_closure(repo, head, &known)?
        };
        new.sort_unstable();
        let tx = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            if rebuild {
                tx.delete_table(REACH).map_err(|e| self.error(e))?;
            }
            let mut table = tx.open_table(REACH).map_err(|e| self.error(e))?;
            for id in &new {
                table.insert(&id.0, ()).map_err(|e| self.error(e))?;
            }
            let mut meta = tx.open_table(META).map_err(|e| self.error(e))?;
            let bytes = postcard::to_allocvec(&want).expect("encodable");
            meta.insert(INDEXED, bytes.as_slice())
                .map_err(|e| self.error(e))?;
        }
        tx.commit().map_err(|e| self.error(e))
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::Other(format!("serve index: {e}"))
    }
}

fn index_error(path: &Path, e: redb::DatabaseError) -> Error {
    Error::Other(format!("cannot open {}: {e}", path.display()))
}
