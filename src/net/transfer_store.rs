//! The iroh-blobs stores a download writes into (`.lode/fetch-store`, `.lode/swarm-store`):
//! opened resumable, a torn one discarded, state changes committed at once.

use std::path::Path;

use iroh_blobs::store::fs::FsStore;

use crate::error::{Error, Result};

/// Opens the transfer store at `dir` (made if missing). One that a killed process left torn
/// (its database cut short before its first commit) is only a cache of what a fetch already
/// verified: it is discarded and made anew, so that the command can go on. One that another
/// process has open is left alone.
pub async fn open_store(dir: &Path) -> Result<FsStore> {
    let err = |e: &dyn std::fmt::Display| {
        Error::Net(format!("cannot open blob store {}: {e}", dir.display()))
    };
    match load(dir).await {
        Ok(s) => Ok(s),
        Err(e) if e.to_string().contains("already open") || !dir.join("blobs.db").exists() => {
            Err(err(&e))
        }
        Err(_) => {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io("cannot remove", dir, e))?;
            load(dir).await.map_err(|e| err(&e))
        }
    }
}

/// Loads the store at `dir`, committing its state changes (an entry begun, grown complete,
/// exported) at once rather than batched for up to half a second: these stores see few such
/// changes (one per big object), and a process killed between a change on disk and its
/// commit would find the entry unusable and fetch it again whole.
async fn load(dir: &Path) -> std::result::Result<FsStore, impl std::fmt::Display> {
    let mut options = iroh_blobs::store::fs::options::Options::new(dir);
    options.batch.max_write_duration = std::time::Duration::from_millis(1);
    FsStore::load_with_opts(dir.join("blobs.db"), options).await
}
