//! The closure walk: level by level, checked, streamed into a repository or a store.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use iroh::endpoint::VarInt;
use iroh::EndpointId;
use iroh_blobs::api::blobs::{ExportMode, ExportOptions};
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::Hash;
use n0_future::{BufferedStreamExt, StreamExt};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::peer_name;
use crate::net::pieces;
use crate::object::{Commit, EntryKind, Tree, MAX_TREE_SIZE};
use crate::ops::sealed;
use crate::progress::Progress;
use crate::repo::Repo;
use crate::worktree::under;

use super::client::*;
use super::store::*;

/// Objects up to this size are fetched through memory rather than the transfer store.
pub(super) const SMALL_BLOB: u64 = 1 << 20;

/// Where fetched objects go.
#[derive(Clone, Copy)]
pub(super) enum Sink<'a> {
    /// Into a repository's object store.
    Repo(&'a Repo),
    /// Stay in the fetch store (for `get`).
    Store,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Commit,
    Tree,
    Blob,
}

pub(super) struct Item {
    pub(super) id: ObjectId,
    pub(super) kind: Kind,
    pub(super) path: String,
    /// The blob's size from its tree entry (0 for commits and trees, which are small).
    pub(super) size: u64,
}

/// A leaf reached by a filtered walk (for `get`).
pub struct Leaf {
    pub path: String,
    pub kind: EntryKind,
    pub id: ObjectId,
}

pub(super) struct Walk<'a> {
    pub(super) client: &'a mut Client,
    /// Where fetched data lands (checked for free space when a download fails).
    pub(super) space_dir: PathBuf,
    pub(super) store: &'a FsStore,
    pub(super) sink: Sink<'a>,
    pub(super) progress: &'a dyn Progress,
    pub(super) objects: u64,
    pub(super) bytes: u64,
    /// Objects never to fetch (a mirror deleted them under a taint notice).
    pub(super) skip: HashSet<ObjectId>,
    /// Small objects of the last batch being written to the store.
    pub(super) writing: Option<tokio::task::JoinHandle<Result<u64>>>,
    /// A lazy clone's walk: commits, trees and symlink targets, no file content.
    pub(super) lazy: bool,
    /// Small objects landing now may be served to the swarm: a verified head reaches them
    /// (off while a walk fetches its roots, the commits it has yet to verify).
    pub(super) serve_landed: bool,
}

impl<'a> Walk<'a> {
    /// A walk that has fetched nothing yet, landing in `sink` (through `store`, whose
    /// directory `space_dir` is checked for free space when a download fails).
    pub(super) fn new(
        client: &'a mut Client,
        space_dir: PathBuf,
        store: &'a FsStore,
        sink: Sink<'a>,
        progress: &'a dyn Progress,
    ) -> Walk<'a> {
        Walk {
            client,
            space_dir,
            store,
            sink,
            progress,
            objects: 0,
            bytes: 0,
            skip: HashSet::new(),
            writing: None,
            lazy: false,
            serve_landed: true,
        }
    }

    pub(super) async fn has(&self, id: &ObjectId) -> bool {
        match self.sink {
            Sink::Repo(r) => r.store().has(id),
            Sink::Store => self
                .store
                .has(Hash::from_bytes(id.0))
                .await
                .unwrap_or(false),
        }
    }

    pub(super) async fn read(&self, id: &ObjectId) -> Result<Vec<u8>> {
        match self.sink {
            // Trees and commits: the larger bound, a tree's.
            Sink::Repo(r) => r.store().read_verified(id, MAX_TREE_SIZE),
            Sink::Store => {
                let b = self
                    .store
                    .get_bytes(Hash::from_bytes(id.0))
                    .await
                    .map_err(|e| Error::Net(format!("blob store: {e}")))?;
                Ok(b.to_vec())
            }
        }
    }

    /// Moves a complete, verified blob from the fetch store into the repository store.
    pub(super) async fn put(&self, id: &ObjectId) -> Result<()> {
        let Sink::Repo(repo) = self.sink else {
            return Ok(());
        };
        let tmp =
            repo.store()
                .tmp_dir()
                .join(format!("fetch-{}-{}", std::process::id(), id.to_hex()));
        let _ = std::fs::remove_file(&tmp);
        let abs = std::path::absolute(&tmp).map_err(|e| Error::io("cannot resolve", &tmp, e))?;
        self.store
            .export_with_opts(ExportOptions {
                hash: Hash::from_bytes(id.0),
                mode: ExportMode::TryReference,
                target: abs.clone(),
            })
            .await
            .map_err(|e| Error::Net(format!("cannot export object {id}: {e}")))?;
        repo.store().adopt(&abs, id)
    }

    /// Streams a blob into `.lode/partial/ID` from each provider in turn (every chunk
    /// verified against `id` by iroh-blobs before it is written), resuming from the whole
    /// 16 KiB groups already there, then moves the file into the object store.
    pub(super) async fn stream_plain(
        &mut self,
        repo: &Repo,
        id: ObjectId,
        size: u64,
    ) -> Result<()> {
        if self.client.swarm.is_some() {
            return self.swarm_fetch(repo, id, size).await;
        }
        let dir = partial_dir(repo);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let path = dir.join(id.to_hex());
        let (live, _) = self.client.by_liveness();
        // Several providers, or pieces left by an earlier piecewise attempt (even one
        // provider can finish those without losing them).
        let piecewise = pieces::is_piecewise(&path);
        if !live.is_empty() && ((live.len() >= 2 && size >= pieces::SPLIT_MIN) || piecewise) {
            // Several providers: pieces of the object from all of them at once.
            let got = pieces::fetch(&self.client.net, &live, id, size, &path, self.progress).await;
            match got {
                Ok(r) => {
                    self.bytes += r.bytes;
                    self.client.dead.extend(r.unreachable);
                    self.client.peers.extend(r.peers);
                    self.objects += 1;
                    return repo.store().adopt(&path, &id);
                }
                Err(e) if is_disk_full(&e) => {
                    pieces::discard(&path);
                    return Err(e);
                }
                // Every provider failed: the pieces stay for a resume.
                Err(e) => return Err(e),
            }
        }
        // A piecewise partial file has holes: the one-provider stream cannot resume it.
        if piecewise {
            pieces::discard(&path);
        }
        // Bytes kept by an earlier run count as received (each attempt below resumes
        // where the last one stopped, counting only what it receives).
        if let Ok(m) = std::fs::metadata(&path) {
            self.progress.inc(m.len() / pieces::GROUP * pieces::GROUP);
        }
        let mut last = Error::NoProvider("no provider".into());
        let (mut order, dead) = self.client.by_liveness();
        order.extend(dead);
        for provider in order {
            match self.stream_from(provider, &path, id).await {
                Ok(()) => {
                    self.client.peers.insert(peer_name(provider.as_bytes()));
                    self.objects += 1;
                    return repo.store().adopt(&path, &id);
                }
                Err(e) if is_disk_full(&e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                Err(e) => {
                    if matches!(e, Error::Unreachable { .. }) {
                        self.client.dead.insert(provider);
                    }
                    last = e
                }
            }
        }
        Err(last)
    }

    /// Fetches a big object through the download's swarm session: pieces from the providers
    /// and from every swarm peer holding them, each verified, served to the other peers as
    /// soon as it is in; the complete object is then renamed into the object store, where the
    /// session goes on serving it from.
    async fn swarm_fetch(&mut self, repo: &Repo, id: ObjectId, size: u64) -> Result<()> {
        use crate::net::swarm::pieces;
        let session = self.client.swarm.as_ref().expect("checked by the caller");
        session.allow(Hash::from_bytes(id.0));
        let (mut origins, dead) = self.client.by_liveness();
        origins.extend(dead);
        let got =
            pieces::fetch(session, &self.client.net, &origins, id, size, self.progress).await?;
        self.bytes += got.bytes;
        self.client.peers.extend(got.peers);
        let target = repo.store().landing_path(&id)?;
        pieces::export(session, id, &target).await?;
        repo.store().seal(&id);
        self.objects += 1;
        Ok(())
    }

    /// Streams blob `id` from `provider`, starting at byte `start` (a multiple of 16 KiB):
    /// iroh-blobs verifies every 16 KiB group against `id` before it is handed on, in order,
    /// to `tx` as `(offset, bytes)` batches of about 1 MiB (per-leaf hand-offs would cost a
    /// thread switch every 16 KiB). A closed `tx` (its consumer failed) stops the stream.
    pub(super) async fn stream_to(
        &mut self,
        provider: EndpointId,
        id: ObjectId,
        start: u64,
        tx: std::sync::mpsc::SyncSender<(u64, bytes::Bytes)>,
    ) -> Result<()> {
        let conn = pieces::connect(&self.client.net, provider).await?;
        let received = std::sync::atomic::AtomicU64::new(0);
        let progress = self.progress;
        let counted = |n: u64| {
            received.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            progress.inc(n);
        };
        let sink = |at: u64, data: bytes::Bytes| {
            pieces::send_blocking(&tx, (at, data))
                .map_err(|_| Error::Net("the consumer of the stream stopped".into()))
        };
        let result = pieces::stream_range(&conn, id, start, None, &sink, &counted).await;
        self.bytes += received.load(std::sync::atomic::Ordering::Relaxed);
        conn.close(VarInt::from_u32(0), b"done");
        result
    }

    pub(super) async fn stream_from(
        &mut self,
        provider: EndpointId,
        path: &Path,
        id: ObjectId,
    ) -> Result<()> {
        use pieces::GROUP;
        use std::os::unix::fs::FileExt;
        let file = pieces::open_partial(path)?;
        let have = file
            .metadata()
            .map_err(|e| Error::io("cannot read", path, e))?
            .len();
        let start = have / GROUP * GROUP;
        file.set_len(start)
            .map_err(|e| Error::io("cannot write", path, e))?;
        // Writing happens on its own thread, so the receiving task only moves bytes. A fresh
        // download needs no second hash: iroh-blobs verified every group, in order, against
        // `id` (the BLAKE3 tree of the whole object, its size included). A resumed one is
        // re-hashed whole from disk at the end, since its first part was written by an
        // earlier process.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, bytes::Bytes)>(32);
        let fresh = start == 0;
        let writer_file = file
            .try_clone()
            .map_err(|e| Error::io("cannot open", path, e))?;
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            for (offset, data) in rx {
                writer_file.write_all_at(&data, offset)?;
            }
            Ok(())
        });
        let result = self.stream_to(provider, id, start, tx).await;
        let written = pieces::join_writer(writer, path).await;
        // A write error (a full disk) explains a stopped transfer better than the transfer.
        written?;
        result?;
        drop(file);
        if fresh {
            return Ok(());
        }
        pieces::check_whole(path, id)
    }

    /// Fetches ciphertext `cipher` from the first provider that answers and decrypts it as it
    /// streams (iroh-blobs verifies every chunk against `cipher` first) into the plaintext
    /// object `plain`. Nothing of the ciphertext touches the disk.
    pub(super) async fn stream_decrypt(
        &mut self,
        repo: &Repo,
        cipher: ObjectId,
        plain: ObjectId,
        ids: &[age::x25519::Identity],
        padded: bool,
    ) -> Result<()> {
        let provider = *(self.client.by_liveness().0.first())
            .ok_or_else(|| Error::NoProvider("no provider answers".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, bytes::Bytes)>(32);
        let store = repo.store().clone();
        let ids = ids.to_vec();
        let worker = std::thread::spawn(move || {
            let reader = std::io::BufReader::with_capacity(
                1 << 20,
                ChanReader {
                    rx,
                    cur: bytes::Bytes::new(),
                },
            );
            sealed::decrypt_from(&store, reader, &cipher, &plain, &ids, padded)
        });
        let streamed = self.stream_to(provider, cipher, 0, tx).await;
        let decrypted = tokio::task::spawn_blocking(move || worker.join())
            .await
            .map_err(|e| Error::Other(e.to_string()))?
            .unwrap_or_else(|_| Err(Error::Other("decryption thread failed".into())));
        // The decryptor's error (a ciphertext that does not authenticate) says more than the
        // stopped stream.
        decrypted?;
        streamed?;
        self.objects += 1;
        Ok(())
    }

    /// Fetches those of `wanted` (ids with sizes) that are missing: small ones through memory
    /// in bounded batches, big ones through the transfer store.
    pub(super) async fn fetch_missing(&mut self, wanted: &[(ObjectId, u64)]) -> Result<()> {
        self.fetch_missing_as(wanted, None).await
    }

    /// [`Walk::fetch_missing`], reported as a progress phase `phase` (when given) whose
    /// totals, the count and bytes of the missing objects, are known before it starts.
    pub(super) async fn fetch_missing_as(
        &mut self,
        wanted: &[(ObjectId, u64)],
        phase: Option<&'static str>,
    ) -> Result<()> {
        let mut missing = Vec::new();
        let mut queued = HashSet::new();
        let mut missing_bytes = 0u64;
        // The sizes of the missing objects.
        let mut sizes: HashMap<ObjectId, u64> = HashMap::new();
        // Into the repository: one look per fan-out directory, not a `stat` per object.
        let mut has_each = match self.sink {
            Sink::Repo(r) => Some(r.store().has_each()),
            Sink::Store => None,
        };
        for (id, size) in wanted {
            if !queued.insert(*id) || self.skip.contains(id) {
                continue;
            }
            let held = match &mut has_each {
                Some(has) => has(id),
                None => self.has(id).await,
            };
            if !held {
                missing.push(Hash::from_bytes(id.0));
                sizes.insert(*id, *size);
                missing_bytes += size;
            }
        }
        drop(has_each);
        let progress = self.progress;
        let files_done = |n: usize| {
            if phase.is_some() {
                (0..n).for_each(|_| progress.file_done());
            }
        };
        if let (Some(name), false) = (phase, missing.is_empty()) {
            progress.phase(name, missing.len() as u64, missing_bytes);
        }
        // Small objects travel through memory in bounded batches and are written to the
        // object store directly: iroh-blobs' file store would create three files and
        // fsync each of them for every blob (about 1 ms per object here).
        if let Sink::Repo(repo) = self.sink {
            let (small, big): (Vec<Hash>, Vec<Hash>) = missing.iter().partition(|h| {
                sizes
                    .get(&ObjectId(*h.as_bytes()))
                    .is_some_and(|n| *n <= SMALL_BLOB)
            });
            missing = big;
            self.land_small(repo, small, &sizes, &files_done).await?;
        }
        // Big objects stream straight into a partial file, provider after provider, each
        // attempt resuming where the last stopped; what still fails goes through the
        // iroh-blobs downloader below.
        if let (Sink::Repo(repo), false) = (self.sink, missing.is_empty()) {
            let mut left = Vec::new();
            for h in std::mem::take(&mut missing) {
                let id = ObjectId(*h.as_bytes());
                let size = sizes.get(&id).copied().unwrap_or(0);
                match self.stream_plain(repo, id, size).await {
                    Ok(()) => files_done(1),
                    Err(e) if is_disk_full(&e) => return Err(e),
                    Err(_) => left.push(h),
                }
            }
            missing = left;
        }
        // Into a get's transfer store with a swarm session (the session's store): small
        // objects in batches and big ones in pieces, from the providers and the swarm; every
        // object fetched is served to the other peers (a verified head reaches it), a big
        // one piece by piece as it arrives (peers learn which from its bitfield), a small one
        // once it is whole in the store.
        if let (Sink::Store, true) = (self.sink, self.client.swarm.is_some()) {
            let (small, big): (Vec<Hash>, Vec<Hash>) =
                std::mem::take(&mut missing).into_iter().partition(|h| {
                    sizes
                        .get(&ObjectId(*h.as_bytes()))
                        .is_some_and(|n| *n <= SMALL_BLOB)
                });
            let left = self.store_small(small, &sizes, &files_done).await?;
            let session = self.client.swarm.as_ref().expect("checked above");
            if self.serve_landed {
                big.iter().for_each(|h| session.allow(*h));
            }
            let (mut origins, dead) = self.client.by_liveness();
            origins.extend(dead);
            for h in big {
                let id = ObjectId(*h.as_bytes());
                let size = sizes.get(&id).copied().unwrap_or(0);
                let net = &self.client.net;
                let got = crate::net::swarm::pieces::fetch(
                    session,
                    net,
                    &origins,
                    id,
                    size,
                    self.progress,
                )
                .await?;
                self.bytes += got.bytes;
                self.objects += 1;
                self.client.peers.extend(got.peers);
                files_done(1);
            }
            missing = left;
        }
        if !missing.is_empty() {
            let (client, store, progress) = (&mut *self.client, self.store, self.progress);
            let got = client
                .download(store, missing.clone(), progress, &mut self.bytes)
                .await;
            if let Err(e) = got {
                // A full disk shows up as a failed download: say so plainly.
                if disk_nearly_full(&self.space_dir) {
                    let full = std::io::Error::from_raw_os_error(28);
                    return Err(Error::io(
                        "cannot store fetched data in",
                        self.space_dir.clone(),
                        full,
                    ));
                }
                return Err(e);
            }
            let this = &*self;
            let ids: Vec<ObjectId> = missing.iter().map(|h| ObjectId(*h.as_bytes())).collect();
            let puts: Vec<Result<()>> = n0_future::stream::iter(ids)
                .map(|id| async move { this.put(&id).await })
                .buffered_unordered(16)
                .collect()
                .await;
            puts.into_iter().collect::<Result<()>>()?;
            self.objects += missing.len() as u64;
            files_done(missing.len());
            // A get's, now whole in its transfer store: served from now on.
            if let (Sink::Store, true, Some(s)) = (self.sink, self.serve_landed, self.served()) {
                s.gate().allow(missing.iter().copied());
            }
        }
        Ok(())
    }

    /// Walks from `roots`, fetching what is missing. `stop` holds commits whose closure is
    /// known to be complete locally. With `filter`, only the named paths of the first commit
    /// are walked (and no parents), and the leaves reached are returned.
    pub(super) async fn run(
        &mut self,
        roots: Vec<ObjectId>,
        stop: &HashSet<ObjectId>,
        dataset: [u8; 32],
        peer: &str,
        filter: Option<&[String]>,
    ) -> Result<Vec<Leaf>> {
        let lying = |msg: String| Error::LyingPeer {
            peer: peer.to_string(),
            msg,
        };
        let mut level: Vec<Item> = roots
            .into_iter()
            .map(|id| Item {
                id,
                kind: Kind::Commit,
                path: String::new(),
                size: 0,
            })
            .collect();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut links: Vec<(String, ObjectId)> = Vec::new();
        let mut leaves = Vec::new();
        // Blobs are fetched last, all at once, so that the count and bytes to receive are
        // known (from the trees) before any of them arrives.
        let mut blobs: Vec<(ObjectId, u64)> = Vec::new();
        // Files held in chunks: (path, whole-file id, size, chunk map).
        let mut chunked: Vec<(String, ObjectId, u64, ObjectId)> = Vec::new();
        self.progress.scan("listing");
        // The roots are served to the swarm once their signatures are checked; what they
        // name (trees, parents, blobs) as it lands, signed for by them.
        let serving = std::mem::replace(&mut self.serve_landed, false);
        let mut roots = Some(level.iter().map(|i| i.id).collect::<Vec<_>>());
        while !level.is_empty() {
            level.retain(|i| seen.insert(i.id) || i.kind == Kind::Blob);
            let wanted: Vec<(ObjectId, u64)> = level.iter().map(|i| (i.id, i.size)).collect();
            self.fetch_missing(&wanted).await?;
            let mut next = Vec::new();
            for item in level {
                match item.kind {
                    Kind::Commit => {
                        if stop.contains(&item.id) {
                            continue;
                        }
                        let c = Commit::decode(&self.read(&item.id).await?)
                            .map_err(|e| lying(format!("commit {}: {e}", item.id)))?;
                        c.verify().map_err(|_| {
                            lying(format!("commit {} has a bad signature", item.id))
                        })?;
                        if c.body.dataset != dataset {
                            return Err(lying(format!(
                                "commit {} belongs to another dataset",
                                item.id
                            )));
                        }
                        if filter.is_none() {
                            next.extend(c.body.parents.iter().map(|p| Item {
                                id: *p,
                                kind: Kind::Commit,
                                path: String::new(),
                                size: 0,
                            }));
                        }
                        next.push(Item {
                            id: c.body.tree,
                            kind: Kind::Tree,
                            path: String::new(),
                            size: 0,
                        });
                    }
                    Kind::Tree => {
                        let t = Tree::decode(&self.read(&item.id).await?).map_err(|e| {
                            lying(format!("tree {} at {:?}: {e}", item.id, item.path))
                        })?;
                        let mut folded = HashSet::new();
                        for e in &t.entries {
                            if !folded.insert(e.name.to_lowercase()) {
                                return Err(lying(format!(
                                    "tree at {:?} has names that differ only in case: {:?}",
                                    item.path, e.name
                                )));
                            }
                        }
                        for e in t.entries {
                            let path = if item.path.is_empty() {
                                e.name
                            } else {
                                format!("{}/{}", item.path, e.name)
                            };
                            if let Some(f) = filter {
                                if !f.iter().any(|p| under(&path, p) || under(p, &path)) {
                                    continue;
                                }
                                if e.kind != EntryKind::Dir && !f.iter().any(|p| under(&path, p)) {
                                    continue;
                                }
                            }
                            match e.kind {
                                EntryKind::Dir => next.push(Item {
                                    id: e.id,
                                    kind: Kind::Tree,
                                    path: path.clone(),
                                    size: 0,
                                }),
                                EntryKind::Symlink => {
                                    links.push((path.clone(), e.id));
                                    blobs.push((e.id, e.size));
                                }
                                EntryKind::File | EntryKind::Executable
                                    if self.lazy && filter.is_none() => {}
                                EntryKind::File | EntryKind::Executable if e.chunks.is_some() => {
                                    let map = e.chunks.expect("checked");
                                    chunked.push((path.clone(), e.id, e.size, map));
                                }
                                _ => blobs.push((e.id, e.size)),
                            }
                            if filter.is_some()
                                && (e.kind != EntryKind::Dir
                                    || filter.is_some_and(|f| f.contains(&path)))
                            {
                                leaves.push(Leaf {
                                    path,
                                    kind: e.kind,
                                    id: e.id,
                                });
                            }
                        }
                    }
                    Kind::Blob => {}
                }
            }
            level = next;
            if let Some(roots) = roots.take() {
                // Every root passed the checks (the walk stops at the first that fails).
                self.serve_landed = serving;
                if let (true, Some(s)) = (serving, self.served()) {
                    let mut held = Vec::new();
                    for id in roots {
                        if self.has(&id).await {
                            held.push(Hash::from_bytes(id.0));
                        }
                    }
                    s.gate().allow(held);
                }
            }
        }
        self.serve_landed = serving;
        // Chunked files. Into a repository: their maps first (small); a file of which this
        // side holds at least half the chunks (an earlier version, another file) gets the
        // chunks it lacks, which join the other blobs (so the totals are known before
        // anything large arrives); one it holds less of comes whole, through the same paths
        // as any large object (several providers, the swarm), and is cut into its chunks
        // here. Into a fetch store (`get`): whole.
        chunked.retain(|(_, id, _, _)| !self.skip.contains(id));
        let (mut assemble, mut split) = (Vec::new(), Vec::new());
        if let Sink::Repo(repo) = self.sink {
            // Held in chunks already: nothing to do. Held whole with its map (fetched whole by
            // a killed run): cut here, nothing travels.
            let in_chunks = |id: &ObjectId, size| {
                repo.store()
                    .chunk_map_of(id, size)
                    .is_ok_and(|m| m.is_some())
            };
            chunked.retain(|(_, id, size, _)| !in_chunks(id, *size));
            // Held whole and its map not here (a restricted dataset's reader decrypts whole
            // files, and its peers serve only ciphertext): it stays whole.
            chunked.retain(|(_, id, _, map)| !repo.store().has(id) || repo.store().has(map));
            let wanted_maps: Vec<(ObjectId, u64)> =
                chunked.iter().map(|(_, _, _, map)| (*map, 0)).collect();
            self.fetch_missing(&wanted_maps).await?;
            for (path, id, size, map_id) in chunked {
                let whole_here = repo.store().has(&id);
                let map = crate::object::ChunkMap::decode(&self.read(&map_id).await?)
                    .map_err(|e| lying(format!("chunk map {map_id} of {path:?}: {e}")))?;
                if map.file != id || map.size != size {
                    return Err(lying(format!(
                        "chunk map {map_id} of {path:?} describes another file ({} bytes of {})",
                        map.size, map.file
                    )));
                }
                let held: u64 = map
                    .chunks
                    .iter()
                    .filter(|(c, _)| repo.store().has(c))
                    .map(|(_, n)| u64::from(*n))
                    .sum();
                if whole_here {
                    split.push((path, map_id));
                } else if held * 2 >= size {
                    blobs.extend(map.chunks.iter().map(|(c, n)| (*c, u64::from(*n))));
                    assemble.push((path, map_id));
                } else {
                    blobs.push((id, size));
                    split.push((path, map_id));
                }
            }
        } else {
            blobs.extend(chunked.iter().map(|(_, id, size, _)| (*id, *size)));
        }
        self.fetch_missing_as(&blobs, Some("receiving")).await?;
        // Each chunked file must assemble to its id (or its whole copy must cut into the
        // map's chunks) before the store says it holds it.
        if let Sink::Repo(repo) = self.sink {
            let jobs = assemble
                .into_iter()
                .map(|j| (j, false))
                .chain(split.into_iter().map(|j| (j, true)));
            // A swarm session goes on serving a whole copy it fetched: it drops it when it
            // ends.
            let drop_whole = self.client.swarm.is_none();
            for ((path, map_id), whole) in jobs {
                let store = repo.store().clone();
                let put = tokio::task::spawn_blocking(move || {
                    if whole {
                        store.split_whole(&map_id, drop_whole)
                    } else {
                        store.put_chunked(&map_id)
                    }
                })
                .await
                .map_err(|e| Error::Other(format!("chunk assembly failed: {e}")))?;
                match put {
                    Ok(file) => {
                        if let (true, Some(s)) = (whole && !drop_whole, &self.client.swarm) {
                            s.drop_whole_when_done(repo.store().clone(), file);
                        }
                    }
                    Err(Error::ObjectCorrupt { id, .. }) => {
                        return Err(lying(format!(
                            "the chunks of {path:?} (map {map_id}) do not assemble to its \
                             id {id}"
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        for (path, id) in links {
            let target = self.read(&id).await?;
            if !link_stays_inside(&path, &target) {
                return Err(lying(format!(
                    "symlink {path:?} points outside the dataset"
                )));
            }
        }
        Ok(leaves)
    }
}

/// Reads the chunks a channel delivers, in order; the end of the channel is the end of input.
pub(super) struct ChanReader {
    rx: std::sync::mpsc::Receiver<(u64, bytes::Bytes)>,
    cur: bytes::Bytes,
}

impl std::io::Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok((_, b)) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Checks that a symlink at `path` with `target` resolves inside the tree.
pub fn link_stays_inside(path: &str, target: &[u8]) -> bool {
    let Ok(target) = std::str::from_utf8(target) else {
        return false;
    };
    if target.starts_with('/') || target.is_empty() {
        return false;
    }
    let mut depth = path.matches('/').count() as i64;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}
