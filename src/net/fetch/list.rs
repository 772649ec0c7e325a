//! Reading a dataset from its providers without a repository: a revision's tree listed
//! (commits and trees only, each verified against its id, commits against their signature),
//! blobs fetched into an object store, and one file streamed as verified bytes. The Python
//! package (`python/`) builds `lode.ls`, `lode.open` and its cache on these.

use std::os::unix::fs::FileExt;
use std::path::Path;

use iroh::endpoint::VarInt;
use iroh_blobs::Hash;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::pieces;
use crate::object::{Commit, EntryKind, Tree};
use crate::progress::{NoProgress, Progress};
use crate::store::Store;

use super::client::*;
use super::walk::SMALL_BLOB;
use crate::net::endpoint::peer_name;

/// One entry of a listed tree.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// `/`-separated path from the dataset's root.
    pub path: String,
    pub kind: EntryKind,
    /// The blob (file, link target) or tree (directory) id.
    pub id: ObjectId,
    /// Bytes of the file or link target; of all files below, for a directory.
    pub size: u64,
}

/// A revision's whole tree, directories before what they hold.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    pub commit: ObjectId,
    pub entries: Vec<Entry>,
}

/// The commit `rev` names among the published refs: `None` is `main`, then a tag, then a
/// full commit id.
pub fn pick_rev(published: &Published, rev: Option<&str>) -> Result<ObjectId> {
    match rev {
        None => published.refs.head.ok_or(Error::NoCommits),
        Some(r) => match published.refs.tags.iter().find(|(n, _)| n == r) {
            Some((_, id)) => Ok(*id),
            None => r.parse::<ObjectId>().map_err(|_| {
                Error::UnknownRev(format!("{r} (a tag of the dataset or a full commit id)"))
            }),
        },
    }
}

/// Lists the refs and the tree of `rev` (`None`: `main`) through `client`. A restricted
/// dataset is refused (its paths are encrypted).
pub async fn list(client: &mut Client, rev: Option<&str>) -> Result<Listing> {
    let published = client.list_refs().await?;
    if published.head.body.private {
        return Err(Error::Other(
            "a restricted dataset is fetched whole (its paths are encrypted): use `lode clone`"
                .into(),
        ));
    }
    let commit = pick_rev(&published, rev)?;
    let entries = list_commit(client, commit, &published.peer).await?;
    Ok(Listing { commit, entries })
}

/// Walks the tree of `commit` level by level, fetching commits and trees only.
pub async fn list_commit(client: &mut Client, commit: ObjectId, peer: &str) -> Result<Vec<Entry>> {
    let lying = |msg: String| Error::LyingPeer {
        peer: peer.to_string(),
        msg,
    };
    let dataset = client.ticket.dataset;
    let bytes = fetch_small(client, &[commit]).await?;
    let c = Commit::decode(&bytes[0]).map_err(|e| lying(format!("commit {commit}: {e}")))?;
    c.verify()
        .map_err(|_| lying(format!("commit {commit} has a bad signature")))?;
    if c.body.dataset != dataset {
        return Err(lying(format!("commit {commit} belongs to another dataset")));
    }
    let mut entries = Vec::new();
    let mut level = vec![(String::new(), c.body.tree)];
    while !level.is_empty() {
        let ids: Vec<ObjectId> = level.iter().map(|(_, id)| *id).collect();
        let trees = fetch_small(client, &ids).await?;
        let mut next = Vec::new();
        for ((dir, id), bytes) in level.into_iter().zip(trees) {
            let t =
                Tree::decode(&bytes).map_err(|e| lying(format!("tree {id} at {dir:?}: {e}")))?;
            let mut folded = std::collections::HashSet::new();
            for e in t.entries {
                if !folded.insert(e.name.to_lowercase()) {
                    return Err(lying(format!(
                        "tree at {dir:?} has names that differ only in case: {:?}",
                        e.name
                    )));
                }
                let path = if dir.is_empty() {
                    e.name
                } else {
                    format!("{dir}/{}", e.name)
                };
                if e.kind == EntryKind::Dir {
                    next.push((path.clone(), e.id));
                }
                entries.push(Entry {
                    path,
                    kind: e.kind,
                    id: e.id,
                    size: e.size,
                });
            }
        }
        level = next;
    }
    Ok(entries)
}

/// Fetches small objects (commits, trees, files up to 1 MiB) into memory, verified, in the
/// order asked: one batched request per provider, else iroh-blobs' downloader.
async fn fetch_small(client: &mut Client, ids: &[ObjectId]) -> Result<Vec<bytes::Bytes>> {
    let hashes: Vec<Hash> = ids.iter().map(|id| Hash::from_bytes(id.0)).collect();
    let got: std::collections::HashMap<Hash, bytes::Bytes> =
        match client.get_many(&hashes, &NoProgress).await {
            Ok(blobs) => blobs.into_iter().collect(),
            Err(_) => {
                let mem = iroh_blobs::store::mem::MemStore::new();
                let mut n = 0;
                client
                    .download(&mem, hashes.clone(), &NoProgress, &mut n)
                    .await?;
                let mut out = std::collections::HashMap::new();
                for h in &hashes {
                    let b = mem
                        .get_bytes(*h)
                        .await
                        .map_err(|e| Error::Net(format!("cannot read fetched object {h}: {e}")))?;
                    out.insert(*h, b);
                }
                let _ = mem.shutdown().await;
                out
            }
        };
    hashes
        .iter()
        .map(|h| {
            got.get(h)
                .cloned()
                .ok_or_else(|| Error::NoProvider(format!("no provider sent object {}", h.to_hex())))
        })
        .collect()
}

/// Fetches the blobs `wanted` (id, size) that `store` lacks into it: small ones batched,
/// big ones streamed into the store's temp directory (every 16 KiB group verified against
/// the id, size included, before it is written) and then moved in, as one `receiving` phase
/// of `progress`. Returns the bytes received.
pub async fn fetch_blobs(
    client: &mut Client,
    wanted: &[(ObjectId, u64)],
    store: &Store,
    progress: &dyn Progress,
) -> Result<u64> {
    let mut missing: Vec<(ObjectId, u64)> = wanted
        .iter()
        .filter(|(id, _)| !store.has(id))
        .copied()
        .collect();
    missing.sort();
    missing.dedup();
    let total = missing.iter().map(|(_, s)| s).sum();
    progress.phase("receiving", missing.len() as u64, total);
    let (small, big): (Vec<_>, Vec<_>) = missing.into_iter().partition(|(_, s)| *s <= SMALL_BLOB);
    let mut received = 0;
    for batch in small.chunks(256) {
        let ids: Vec<ObjectId> = batch.iter().map(|(id, _)| *id).collect();
        for (id, bytes) in ids.iter().zip(fetch_small(client, &ids).await?) {
            received += bytes.len() as u64;
            if store.put_bytes(&bytes)? != *id {
                return Err(Error::ObjectCorrupt {
                    id: *id,
                    path: None,
                });
            }
            progress.inc(bytes.len() as u64);
            progress.file_done();
        }
    }
    for (id, size) in big {
        // A name of this process's own (two threads may fetch one blob at once).
        let tmp = crate::leftover::in_tmp_dir(store.tmp_dir(), "fetch");
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        let sink = |at: u64, data: bytes::Bytes| {
            file.write_all_at(&data, at)
                .map_err(|e| Error::io("cannot write", &tmp, e))
        };
        let done = stream(client, id, &sink, progress).await;
        drop(file);
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        received += size;
        store.adopt(&tmp, &id)?;
        progress.file_done();
    }
    progress.finish();
    Ok(received)
}

/// Streams blob `id` from the first provider that connects, handing on each verified batch
/// (in order, from offset 0) to `sink`. A provider that fails before sending anything is
/// skipped for the next; one that fails part-way ends the stream with its error. Verified
/// bytes are counted to `progress`.
pub async fn stream(
    client: &mut Client,
    id: ObjectId,
    sink: &(dyn Fn(u64, bytes::Bytes) -> Result<()> + Sync),
    progress: &dyn Progress,
) -> Result<()> {
    let (live, dead) = client.by_liveness();
    let mut last = Error::NoProvider("the ticket names no provider".into());
    for provider in live.into_iter().chain(dead) {
        let conn = match pieces::connect(&client.net, provider).await {
            Ok(c) => c,
            Err(e) => {
                client.dead.insert(provider);
                last = e;
                continue;
            }
        };
        let sent = std::sync::atomic::AtomicU64::new(0);
        let counted = |n: u64| {
            sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            progress.inc(n);
        };
        let r = pieces::stream_range(&conn, id, 0, None, sink, &counted).await;
        conn.close(VarInt::from_u32(0), b"done");
        match r {
            Ok(()) => {
                client.peers.insert(peer_name(provider.as_bytes()));
                return Ok(());
            }
            Err(e) if sent.load(std::sync::atomic::Ordering::Relaxed) > 0 => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The entries of `listing` that `paths` name (a path names itself and what is below it),
/// files and symlinks only; fails on a path the revision does not have.
pub fn select<'a>(listing: &'a Listing, paths: &[String]) -> Result<Vec<&'a Entry>> {
    use crate::worktree::under;
    for p in paths {
        if !p.is_empty() && !listing.entries.iter().any(|e| under(&e.path, p)) {
            return Err(Error::PathNotInRev {
                path: p.clone(),
                rev: listing.commit.short(),
            });
        }
    }
    Ok(listing
        .entries
        .iter()
        .filter(|e| e.kind != EntryKind::Dir)
        .filter(|e| paths.iter().any(|p| p.is_empty() || under(&e.path, p)))
        .collect())
}

/// True when `path` exists and is a regular file holding exactly blob `id`.
pub fn holds(path: &Path, id: &ObjectId) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::File::open(path)
            .ok()
            .and_then(|f| crate::store::hash_reader(f).ok())
            .is_some_and(|(got, _)| got == *id)
}
