//! `lode get`: a few files of a revision, without a repository.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use iroh_blobs::store::fs::FsStore;
use iroh_blobs::Hash;

use crate::error::{Error, Result};
use crate::keys::Home;
use crate::net::endpoint::NetOptions;
use crate::object::EntryKind;
use crate::ops::checkout::{place, Placing};
use crate::progress::Progress;
use crate::ticket::Ticket;
use crate::trust::{self, Bundle};
use crate::worktree::under;

use super::client::*;
use super::store::*;
use super::walk::*;

/// How to `get`.
#[derive(Default)]
pub struct GetOptions {
    /// The capability ticket to present.
    pub cap: Option<Bundle>,
    /// A tag or full commit id instead of `main`.
    pub rev: Option<String>,
    /// Replace files in the destination that differ from the dataset's.
    pub force: bool,
}

/// What `get` wrote.
#[derive(Debug, serde::Serialize)]
pub struct GetReport {
    pub commit: String,
    pub files: Vec<String>,
    #[serde(flatten)]
    pub transfer: FetchReport,
}

/// Sorts the destinations of `leaves` under `to` into those that already hold what would be
/// written (left as they are) and those where something else stands (a file that differs,
/// a directory where a file goes, or the reverse).
pub(super) async fn compare_destination(
    store: &FsStore,
    leaves: &[Leaf],
    to: &Path,
) -> (HashSet<String>, Vec<String>) {
    let mut same = HashSet::new();
    let mut differ = Vec::new();
    for leaf in leaves {
        let dest = to.join(&leaf.path);
        let Ok(m) = std::fs::symlink_metadata(&dest) else {
            continue;
        };
        let equal = match leaf.kind {
            EntryKind::Dir => m.is_dir(),
            EntryKind::File | EntryKind::Executable => {
                m.is_file()
                    && std::fs::File::open(&dest)
                        .ok()
                        .and_then(|f| crate::store::hash_reader(f).ok())
                        .is_some_and(|(id, _)| id == leaf.id)
            }
            EntryKind::Symlink => match (
                std::fs::read_link(&dest),
                store.get_bytes(Hash::from_bytes(leaf.id.0)).await,
            ) {
                (Ok(have), Ok(want)) => {
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::as_bytes(have.as_os_str())
                        == &want[..]
                }
                _ => false,
            },
        };
        if equal {
            same.insert(leaf.path.clone());
        } else if leaf.kind != EntryKind::Dir || !m.is_dir() {
            differ.push(leaf.path.clone());
        }
    }
    (same, differ)
}

/// Fetches only the named paths of the dataset's `main` commit into `to`, verified.
pub async fn get(
    home: &Home,
    ticket: &Ticket,
    mut how: GetOptions,
    paths: &[String],
    to: &Path,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<GetReport> {
    let cap = how.cap.take();
    let start = Instant::now();
    if let Some(c) = &cap {
        for p in paths {
            if !trust::in_scope(&c.leaf().body.scope, p.trim_matches('/')) {
                return Err(trust::TrustError::OutOfScope(p.clone()).into());
            }
        }
    }
    let mut client = Client::new(home, ticket, cap, opts).await?;
    let got = get_with(&mut client, home, &how, paths, to, opts, progress, start).await;
    // On success, the swarm session goes on serving what this get fetched (from its transfer
    // store, which it removes when it stops).
    let seeder = match &got {
        Ok(_) => super::share::Seeder::take(&mut client, opts),
        Err(_) => None,
    };
    client.close().await;
    let mut report = got?;
    if let Some(s) = seeder {
        report.transfer.swarm = Some(s.finish(progress).await);
    }
    Ok(report)
}

/// The body of [`get`], with its client (`how.cap` is the client's).
#[allow(clippy::too_many_arguments)]
async fn get_with(
    client: &mut Client,
    home: &Home,
    how: &GetOptions,
    paths: &[String],
    to: &Path,
    opts: &NetOptions,
    progress: &dyn Progress,
    start: Instant,
) -> Result<GetReport> {
    let ticket = client.ticket.clone();
    let published = client.list_refs().await?;
    if published.head.body.private {
        return Err(Error::Other(
            "a restricted dataset is fetched whole (its paths are encrypted): use `lode clone`"
                .into(),
        ));
    }
    let head = super::list::pick_rev(&published, how.rev.as_deref())?;
    let peer = published.peer.clone();
    crate::net::uri::remember(home, &ticket);
    std::fs::create_dir_all(to).map_err(|e| Error::io("cannot create directory", to, e))?;
    let to = std::path::absolute(to).map_err(|e| Error::io("cannot resolve", to, e))?;
    let dir = to.join(".lode-get");
    // A public dataset's get takes part in its swarm like a clone: its transfer store is the
    // session's, which serves what this get verified (pieces of big files as they arrive)
    // while it runs and seeds, and is removed when the session ends.
    let store = if opts.share.enabled {
        super::share::join_swarm(client, home, dir.clone(), None, &opts.share).await?;
        client.swarm.as_ref().expect("just joined").store.clone()
    } else {
        open_store(&dir).await?
    };
    let mut walk = Walk::new(client, dir.clone(), &store, Sink::Store, progress);
    let leaves = walk
        .run(
            vec![head],
            &HashSet::new(),
            ticket.dataset,
            &peer,
            Some(paths),
        )
        .await;
    let (objects, bytes) = (walk.objects, walk.bytes);
    let leaves = match leaves {
        Ok(l) => l,
        Err(e) => {
            let _ = store.shutdown().await;
            return Err(e);
        }
    };
    for p in paths {
        if !leaves.iter().any(|l| under(&l.path, p)) {
            close_store(store, &dir).await;
            return Err(Error::PathNotInRev {
                path: p.clone(),
                rev: head.short(),
            });
        }
    }
    // A file already there is never replaced by another content unless forced (it may be
    // the user's edit); one that already holds what would be written is left as is.
    let (same, differ) = compare_destination(&store, &leaves, &to).await;
    if !differ.is_empty() && !how.force {
        close_store(store, &dir).await;
        return Err(Error::WouldOverwrite(differ));
    }
    let mut files = Vec::new();
    let result: Result<()> = async {
        // Files are exported under a temp name in `.lode-get/out` and renamed into place, so
        // a killed get leaves no partial file in `to`; the next get removes what a dead one
        // left there (and `.lode-get` goes whole once a get succeeds).
        let out = dir.join("out");
        std::fs::create_dir_all(&out).map_err(|e| Error::io("cannot create", &out, e))?;
        crate::leftover::clean_tmp_dir(&out);
        let mut cleaned = HashSet::new();
        for leaf in &leaves {
            if same.contains(&leaf.path) {
                if leaf.kind != EntryKind::Dir {
                    files.push(leaf.path.clone());
                }
                continue;
            }
            // Trees were checked as they arrived; never write a path naming `.lode`.
            if !leaf.path.split('/').all(crate::object::valid_name) {
                return Err(Error::LyingPeer {
                    peer: peer.clone(),
                    msg: format!("its tree names the path {:?}", leaf.path),
                });
            }
            let dest = to.join(&leaf.path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create directory", parent, e))?;
                if cleaned.insert(parent.to_path_buf()) {
                    crate::leftover::clean_dir(parent);
                }
            }
            match leaf.kind {
                EntryKind::Dir => {
                    std::fs::create_dir_all(&dest)
                        .map_err(|e| Error::io("cannot create directory", &dest, e))?;
                }
                EntryKind::Symlink => {
                    let target = store
                        .get_bytes(Hash::from_bytes(leaf.id.0))
                        .await
                        .map_err(|e| Error::Net(e.to_string()))?;
                    place(&out, "get", &dest, |tmp| {
                        std::os::unix::fs::symlink(
                            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target),
                            tmp,
                        )
                        .map_err(|e| Error::io("cannot create symlink", tmp, e))
                    })?;
                    files.push(leaf.path.clone());
                }
                EntryKind::File | EntryKind::Executable => {
                    // The writer of checkout, driven here by hand: the export is async.
                    let mut at = Placing::new(&out, "get", &dest);
                    loop {
                        let made = export_file(&store, leaf, at.tmp()).await;
                        match at.finish(made)? {
                            Some(next) => at = next,
                            None => break,
                        }
                    }
                    files.push(leaf.path.clone());
                }
            }
        }
        Ok(())
    }
    .await;
    // A swarm session keeps its store (this get's) until it stops seeding.
    if client.swarm.is_none() || result.is_err() {
        close_store(store, &dir).await;
    }
    let transfer = client.report(Some(head), objects, bytes, start);
    result?;
    Ok(GetReport {
        commit: head.to_hex(),
        files,
        transfer,
    })
}

/// Exports blob `leaf` of `store` to the temp path `tmp` with the entry's mode.
async fn export_file(store: &FsStore, leaf: &Leaf, tmp: &Path) -> Result<()> {
    store
        .export(Hash::from_bytes(leaf.id.0), tmp)
        .await
        .map_err(|e| Error::Net(format!("cannot write {}: {e}", tmp.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(leaf.kind.file_mode()))
        .map_err(|e| Error::io("cannot set permissions of", tmp, e))
}
