//! Where fetched data waits: the transfer store (`.lode/fetch-store`, resumable) and the
//! partial files of big objects (`.lode/partial`), and how a full disk is recognised.

use std::path::{Path, PathBuf};

use iroh_blobs::store::fs::FsStore;

use crate::error::Error;
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

pub(crate) use crate::net::transfer_store::open_store;

pub(super) async fn close_store(store: FsStore, dir: &Path) {
    let _ = store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
