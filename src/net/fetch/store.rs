//! Where fetched data waits: the transfer store (`.lode/fetch-store`, resumable) and the
//! partial files of big objects (`.lode/partial`), and how a full disk is recognised.

use std::path::{Path, PathBuf};

use iroh_blobs::store::fs::FsStore;

use crate::error::{Error, Result};
use crate::repo::Repo;

/// Where big objects stream to before they move into the object store.
pub(super) fn partial_dir(repo: &Repo) -> PathBuf {
    repo.root().join(".lode").join("partial")
}

/// True for an error caused by a full disk (ENOSPC, EDQUOT).
pub(super) fn is_disk_full(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
}

/// Reports whether the filesystem holding `dir` has less than 4 MiB free.
pub(super) fn disk_nearly_full(dir: &Path) -> bool {
    rustix::fs::statvfs(dir).is_ok_and(|s| s.f_bavail.saturating_mul(s.f_frsize) < 4 << 20)
}

pub(super) fn fetch_store_dir(repo: &Repo) -> PathBuf {
    repo.root().join(".lode").join("fetch-store")
}

/// The blob store of a download's swarm session (resumable like the transfer store).
pub(super) fn swarm_store_dir(repo: &Repo) -> PathBuf {
    repo.root().join(".lode").join("swarm-store")
}

/// Opens the transfer store at `dir` (made if missing). One that a killed process left torn
/// (its database cut short before its first commit) is only a cache of what a fetch already
/// verified: it is discarded and made anew, so that the command can go on. One that another
/// process has open is left alone.
pub(crate) async fn open_store(dir: &Path) -> Result<FsStore> {
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

pub(super) async fn close_store(store: FsStore, dir: &Path) {
    let _ = store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
