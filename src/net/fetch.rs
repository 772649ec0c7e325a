//! Fetching datasets: `clone`, `fetch`, `pull` and `get`.
//!
//! The client lists the refs of a provider over `lode/2`, then walks the commit closure level
//! by level (commits, then their trees, then the trees' children), asking only for objects it
//! does not have. Objects travel over iroh-blobs: every 16 KiB chunk group is verified
//! against the BLAKE3 id while it streams, several providers serve one fetch (the iroh-blobs
//! downloader tries the next provider when one fails, resuming mid-blob), and a fetch that was
//! interrupted resumes from the partial data in `.lode/fetch-store`.
//!
//! Received trees and commits are checked before anything is written to the working tree:
//! strict tree decoding (no `..`, `/`, empty, duplicate names), no names that collide when case
//! is folded, symlink targets that are relative and stay inside the tree, commits signed and
//! belonging to the dataset. Remote refs move only when the whole closure is present.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, VarInt};
use iroh::EndpointId;
use iroh_blobs::api::blobs::{ExportMode, ExportOptions};
use iroh_blobs::api::downloader::{DownloadOptions, DownloadProgressItem, SplitStrategy};
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::Hash;
use n0_future::{BufferedStreamExt, StreamExt};
use redb::ReadableTable;

use crate::config;
use crate::db::{CONFIG, REFS};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::keys::Home;
use crate::net::endpoint::CONNECT_TIMEOUT;
use crate::net::endpoint::{bind, peer_name, Net, NetOptions};
use crate::net::pieces;
use crate::net::proto::{self, Listing, Request, Response};
use crate::object::{Commit, EntryKind, Tree, MAX_OBJECT_META_SIZE};
use crate::ops::access;
use crate::ops::graph::{head_refs, Refs};
use crate::ops::sealed::{self, Manifest};
use crate::progress::Progress;
use crate::repo::{Repo, RepoOptions};
use crate::ticket::Ticket;
use crate::trust::{self, Bundle, Revocation, SignedHead};
use crate::worktree::under;

/// Objects up to this size are fetched through memory rather than the transfer store.
const SMALL_BLOB: u64 = 1 << 20;

/// What a fetch moved.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FetchReport {
    /// The remote `main` commit, if the dataset has one.
    pub head: Option<String>,
    /// Objects received (already-present objects are not counted).
    pub objects: u64,
    /// Payload bytes received over the network.
    pub bytes: u64,
    pub seconds: f64,
    /// Endpoint ids (short) of the peers that answered.
    pub peers: Vec<String>,
}

/// What a provider publishes for a dataset, verified: the refs of a head signed by a writer,
/// and the revocations (a superset of those the head lists).
#[derive(Debug, Clone)]
pub struct Published {
    pub refs: Refs,
    pub head: SignedHead,
    pub revocations: Vec<Revocation>,
    /// The provider that answered.
    pub peer: String,
}

/// The order in which the downloader asks providers for one object: the providers that
/// answer, rotated by the object's hash so that many objects spread evenly over them, then
/// those that did not answer.
#[derive(Debug, Clone)]
struct Spread {
    live: Vec<EndpointId>,
    dead: Vec<EndpointId>,
}

impl iroh_blobs::api::downloader::ContentDiscovery for Spread {
    fn find_providers(
        &self,
        content: iroh_blobs::HashAndFormat,
    ) -> n0_future::stream::Boxed<EndpointId> {
        let mut order = self.live.clone();
        if !order.is_empty() {
            let k = content.hash.as_bytes()[0] as usize % order.len();
            order.rotate_left(k);
        }
        order.extend(self.dead.iter().copied());
        n0_future::stream::iter(order).boxed()
    }
}

/// A connected client for one ticket.
pub struct Client {
    net: Net,
    ticket: Ticket,
    /// The capability ticket presented to providers.
    cap: Option<Bundle>,
    providers: Vec<EndpointId>,
    /// Providers that failed to answer: tried last from then on.
    dead: HashSet<EndpointId>,
    peers: BTreeSet<String>,
    /// Whether `net` was bound for this client (and is closed with it).
    owned: bool,
    /// iroh-blobs connections kept open for batched requests of small objects.
    conns: HashMap<EndpointId, Connection>,
    /// Providers that failed a batched request (gone, or a lode that refuses `GetMany`):
    /// not asked for batches again.
    no_batch: HashSet<EndpointId>,
}

impl Client {
    /// Binds an endpoint with the device key and learns the ticket's provider addresses.
    pub async fn new(
        home: &Home,
        ticket: &Ticket,
        cap: Option<Bundle>,
        opts: &NetOptions,
    ) -> Result<Client> {
        let key = home.device_key()?;
        let net = bind(&key, opts).await?;
        let mut client = Client::with_net(net, ticket, cap)?;
        client.owned = true;
        Ok(client)
    }

    /// Uses an existing endpoint (a serving peer fetching a push).
    pub fn with_net(net: Net, ticket: &Ticket, cap: Option<Bundle>) -> Result<Client> {
        let providers = ticket
            .providers
            .iter()
            .map(|p| net.learn(p))
            .collect::<Result<_>>()?;
        Ok(Client {
            net,
            ticket: ticket.clone(),
            cap,
            providers,
            dead: HashSet::new(),
            peers: BTreeSet::new(),
            owned: false,
            conns: HashMap::new(),
            no_batch: HashSet::new(),
        })
    }

    /// Asks the providers, in order, for the dataset's signed head; returns the first valid
    /// answer.
    pub async fn list_refs(&mut self) -> Result<Published> {
        let mut failures = Vec::new();
        for id in self.providers.clone() {
            let name = peer_name(id.as_bytes());
            match self.list_refs_from(id).await {
                Ok(refs) => {
                    self.peers.insert(name);
                    return Ok(refs);
                }
                Err(e) => {
                    if matches!(e, Error::Unreachable { .. }) {
                        self.dead.insert(id);
                    }
                    failures.push(e)
                }
            }
        }
        match failures.len() {
            1 => Err(failures.remove(0)),
            _ => Err(Error::NoProvider(
                failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    async fn list_refs_from(&self, id: EndpointId) -> Result<Published> {
        let req = Request::ListRefs {
            dataset: self.ticket.dataset,
            ticket: self.cap.as_ref().map(Bundle::encode),
        };
        let peer = peer_name(id.as_bytes());
        let listing = match self.request(id, &req, CONNECT_TIMEOUT).await? {
            Response::Refs(listing) => listing,
            Response::Denied(msg) => return Err(Error::NotAuthorized { peer, msg }),
            Response::Error(msg) | Response::Rejected(msg) => {
                return Err(Error::Peer { peer, msg })
            }
            Response::Pushed { .. } | Response::Revoked { .. } => {
                return Err(Error::LyingPeer {
                    peer,
                    msg: "answered a ref listing with something else".into(),
                })
            }
        };
        verify_listing(&listing, &self.ticket.dataset, &peer)
    }

    /// Subscribes to the dataset at its first provider that answers: returns the verified
    /// listing as soon as its head's sequence number exceeds `seq`, or after about `wait`
    /// seconds with the current one.
    pub async fn wait_head(&mut self, seq: u64, wait: u64) -> Result<Published> {
        let req = Request::WaitHead {
            dataset: self.ticket.dataset,
            ticket: self.cap.as_ref().map(Bundle::encode),
            seq,
            wait,
        };
        let mut last = Error::NoProvider("no provider".into());
        for id in self.providers.clone() {
            let peer = peer_name(id.as_bytes());
            let answer = self.request(id, &req, Duration::from_secs(wait + 15)).await;
            match answer {
                Ok(Response::Refs(listing)) => {
                    return verify_listing(&listing, &self.ticket.dataset, &peer)
                }
                Ok(Response::Denied(msg)) => last = Error::NotAuthorized { peer, msg },
                Ok(other) => {
                    last = Error::Peer {
                        peer,
                        msg: format!("no subscription ({other:?})"),
                    }
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Sends one `lode/2` request to provider `id` and waits up to `wait` for the answer.
    pub async fn request(&self, id: EndpointId, req: &Request, wait: Duration) -> Result<Response> {
        let bytes = crate::net::endpoint::exchange(
            &self.net,
            id,
            proto::ALPN,
            &proto::encode(req),
            proto::MAX_MESSAGE,
            wait,
        )
        .await?;
        proto::decode::<Response>(&bytes).map_err(|e| Error::LyingPeer {
            peer: peer_name(id.as_bytes()),
            msg: format!("malformed response: {e}"),
        })
    }

    /// The providers in ticket order, split into those that answered (or were not tried)
    /// and those that did not answer.
    fn by_liveness(&self) -> (Vec<EndpointId>, Vec<EndpointId>) {
        self.providers
            .iter()
            .copied()
            .partition(|p| !self.dead.contains(p))
    }

    /// Returns the providers' endpoint ids, in ticket order.
    pub fn providers(&self) -> &[EndpointId] {
        &self.providers
    }

    /// Fetches the whole blobs `hashes`, verified as they stream, with one `GetMany` request
    /// per provider (the providers that answer share the batch by hash) over connections
    /// kept for the next batch: one stream for many objects instead of one request each.
    /// Fails if any provider fails, which is then not asked for batches again (the caller
    /// falls back to [`Client::download`], which tries each object's providers in turn and
    /// names a peer that lies).
    async fn get_many(
        &mut self,
        hashes: &[Hash],
        progress: &dyn Progress,
    ) -> Result<Vec<(Hash, bytes::Bytes)>> {
        let live: Vec<EndpointId> = self
            .by_liveness()
            .0
            .into_iter()
            .filter(|p| !self.no_batch.contains(p))
            .collect();
        if live.is_empty() {
            return Err(Error::NoProvider(
                "no provider answers batched requests".into(),
            ));
        }
        let mut shares: Vec<Vec<Hash>> = vec![Vec::new(); live.len()];
        for h in hashes {
            shares[h.as_bytes()[0] as usize % live.len()].push(*h);
        }
        let mut asks = Vec::new();
        for (p, share) in live.into_iter().zip(shares) {
            if share.is_empty() {
                continue;
            }
            let conn = match self.conns.get(&p) {
                Some(c) if c.close_reason().is_none() => c.clone(),
                _ => match pieces::connect(&self.net, p).await {
                    Ok(c) => {
                        self.conns.insert(p, c.clone());
                        c
                    }
                    Err(e) => {
                        self.no_batch.insert(p);
                        return Err(e);
                    }
                },
            };
            asks.push((p, conn, share));
        }
        let counted = |n: u64| progress.inc(n);
        let results = n0_future::join_all(asks.iter().map(|(p, conn, share)| async move {
            (*p, pieces::get_many(conn, share, &counted).await)
        }))
        .await;
        let mut out = Vec::with_capacity(hashes.len());
        let mut failed = None;
        for (p, got) in results {
            match got {
                Ok(blobs) => {
                    self.peers.insert(peer_name(p.as_bytes()));
                    out.extend(blobs);
                }
                Err(e) => {
                    self.no_batch.insert(p);
                    if let Some(c) = self.conns.remove(&p) {
                        c.close(VarInt::from_u32(0), b"failed");
                    }
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Downloads `hashes` into `store` from all providers; on failure, finds out which peer
    /// sent bad data, if one did.
    async fn download(
        &mut self,
        store: &iroh_blobs::api::Store,
        hashes: Vec<Hash>,
        progress: &dyn Progress,
        bytes: &mut u64,
    ) -> Result<()> {
        // Bytes already held (a resumed transfer), asked for concurrently: the downloader's
        // progress counts them too.
        let before: u64 = n0_future::stream::iter(hashes.iter().copied())
            .map(|h| async move {
                store
                    .remote()
                    .local(h)
                    .await
                    .map(|l| l.local_bytes())
                    .unwrap_or(0)
            })
            .buffered_unordered(32)
            .collect::<Vec<u64>>()
            .await
            .into_iter()
            .sum();
        let dl = store.downloader(&self.net.endpoint);
        let (live, dead) = self.by_liveness();
        let spread = Spread { live, dead };
        let opts = DownloadOptions::new(hashes.clone(), spread, SplitStrategy::None);
        let mut stream = dl
            .download_with_opts(opts)
            .stream()
            .await
            .map_err(|e| Error::Net(format!("downloader: {e}")))?;
        let mut last = 0u64;
        let mut errored = false;
        let mut tried = HashSet::new();
        let mut failed = HashSet::new();
        while let Some(item) = stream.next().await {
            match item {
                DownloadProgressItem::Progress(total) => {
                    progress.inc(total.saturating_sub(last));
                    last = total.max(last);
                }
                DownloadProgressItem::TryProvider { id, .. } => {
                    tried.insert(id);
                }
                DownloadProgressItem::ProviderFailed { id, .. } => {
                    failed.insert(id);
                }
                DownloadProgressItem::DownloadError | DownloadProgressItem::Error(_) => {
                    errored = true;
                }
                _ => {}
            }
        }
        *bytes += last.saturating_sub(before);
        for id in tried.difference(&failed) {
            self.peers.insert(peer_name(id.as_bytes()));
        }
        if !errored && failed.is_empty() {
            return Ok(());
        }
        let mut missing = Vec::new();
        for h in &hashes {
            if !store.has(*h).await.unwrap_or(false) {
                missing.push(*h);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.diagnose(store, missing[0]).await)
    }

    /// Fetches one missing blob from each provider in turn to name the one that lies.
    async fn diagnose(&self, store: &iroh_blobs::api::Store, hash: Hash) -> Error {
        let mut reasons = Vec::new();
        for id in &self.providers {
            let peer = peer_name(id.as_bytes());
            let conn = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                self.net.endpoint.connect(*id, iroh_blobs::ALPN),
            )
            .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    reasons.push(format!("{peer}: {e}"));
                    continue;
                }
                Err(_) => {
                    reasons.push(format!("{peer}: no answer"));
                    continue;
                }
            };
            match store.remote().fetch(conn.clone(), hash).await {
                Ok(_) => return Error::Net(format!("object {hash} arrived only on a second try")),
                Err(iroh_blobs::get::GetError::Decode { source, .. }) => {
                    return Error::LyingPeer {
                        peer,
                        msg: format!(
                            "object {} failed BLAKE3 verification ({source})",
                            hash.to_hex()
                        ),
                    };
                }
                Err(e) => reasons.push(format!("{peer}: {e}")),
            }
        }
        Error::NoProvider(format!(
            "object {} could not be fetched: {}",
            hash.to_hex(),
            reasons.join("; ")
        ))
    }

    fn report(
        &self,
        head: Option<ObjectId>,
        objects: u64,
        bytes: u64,
        start: Instant,
    ) -> FetchReport {
        FetchReport {
            head: head.map(|h| h.to_hex()),
            objects,
            bytes,
            seconds: start.elapsed().as_secs_f64(),
            peers: self.peers.iter().cloned().collect(),
        }
    }

    /// Closes the endpoint if this client bound it.
    pub async fn close(self) {
        for c in self.conns.values() {
            c.close(VarInt::from_u32(0), b"done");
        }
        if self.owned {
            self.net.endpoint.close().await;
        }
    }
}

/// Where fetched objects go.
#[derive(Clone, Copy)]
enum Sink<'a> {
    /// Into a repository's object store.
    Repo(&'a Repo),
    /// Stay in the fetch store (for `get`).
    Store,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Commit,
    Tree,
    Blob,
}

struct Item {
    id: ObjectId,
    kind: Kind,
    path: String,
    /// The blob's size from its tree entry (0 for commits and trees, which are small).
    size: u64,
}

/// A leaf reached by a filtered walk (for `get`).
pub struct Leaf {
    pub path: String,
    pub kind: EntryKind,
    pub id: ObjectId,
}

struct Walk<'a> {
    client: &'a mut Client,
    /// Where fetched data lands (checked for free space when a download fails).
    space_dir: PathBuf,
    store: &'a FsStore,
    sink: Sink<'a>,
    progress: &'a dyn Progress,
    objects: u64,
    bytes: u64,
    /// Objects never to fetch (a mirror deleted them under a taint notice).
    skip: HashSet<ObjectId>,
    /// Small objects of the last batch being written to the store.
    writing: Option<tokio::task::JoinHandle<Result<u64>>>,
}

impl Walk<'_> {
    async fn has(&self, id: &ObjectId) -> bool {
        match self.sink {
            Sink::Repo(r) => r.store().has(id),
            Sink::Store => self
                .store
                .has(Hash::from_bytes(id.0))
                .await
                .unwrap_or(false),
        }
    }

    async fn read(&self, id: &ObjectId) -> Result<Vec<u8>> {
        match self.sink {
            Sink::Repo(r) => r.store().read_verified(id, MAX_OBJECT_META_SIZE),
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

    /// Fetches small objects into memory (verified while they stream) and writes them to the
    /// repository's object store on a blocking thread, while the next batch downloads
    /// ([`Walk::finish_writes`] waits for it).
    async fn fetch_small(&mut self, repo: &Repo, hashes: Vec<Hash>) -> Result<()> {
        let (client, progress) = (&mut *self.client, self.progress);
        let blobs = match client.get_many(&hashes, progress).await {
            Ok(blobs) => {
                self.bytes += blobs.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
                blobs
            }
            Err(_) => {
                let mem = iroh_blobs::store::mem::MemStore::new();
                client
                    .download(&mem, hashes.clone(), progress, &mut self.bytes)
                    .await?;
                let mut blobs = Vec::with_capacity(hashes.len());
                for h in &hashes {
                    let bytes = mem
                        .get_bytes(*h)
                        .await
                        .map_err(|e| Error::Net(format!("cannot read fetched object {h}: {e}")))?;
                    blobs.push((*h, bytes));
                }
                let _ = mem.shutdown().await;
                blobs
            }
        };
        self.finish_writes().await?;
        let store = repo.store().clone();
        self.writing = Some(tokio::task::spawn_blocking(move || -> Result<u64> {
            for (h, bytes) in &blobs {
                let id = store.put_bytes(bytes)?;
                if id.0 != *h.as_bytes() {
                    return Err(Error::ObjectCorrupt { id, path: None });
                }
            }
            Ok(blobs.len() as u64)
        }));
        Ok(())
    }

    /// Waits until the small objects fetched so far are in the object store.
    async fn finish_writes(&mut self) -> Result<()> {
        if let Some(job) = self.writing.take() {
            self.objects += job
                .await
                .map_err(|e| Error::Other(format!("object writer failed: {e}")))??;
        }
        Ok(())
    }

    /// Moves a complete, verified blob from the fetch store into the repository store.
    async fn put(&self, id: &ObjectId) -> Result<()> {
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
    async fn stream_plain(&mut self, repo: &Repo, id: ObjectId, size: u64) -> Result<()> {
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

    /// Streams blob `id` from `provider`, starting at byte `start` (a multiple of 16 KiB):
    /// iroh-blobs verifies every 16 KiB group against `id` before it is handed on, in order,
    /// to `tx` as `(offset, bytes)` batches of about 1 MiB (per-leaf hand-offs would cost a
    /// thread switch every 16 KiB). A closed `tx` (its consumer failed) stops the stream.
    async fn stream_to(
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

    async fn stream_from(&mut self, provider: EndpointId, path: &Path, id: ObjectId) -> Result<()> {
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
    async fn stream_decrypt(
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
    async fn fetch_missing(&mut self, wanted: &[(ObjectId, u64)]) -> Result<()> {
        self.fetch_missing_as(wanted, None).await
    }

    /// [`Walk::fetch_missing`], reported as a progress phase `phase` (when given) whose
    /// totals, the count and bytes of the missing objects, are known before it starts.
    async fn fetch_missing_as(
        &mut self,
        wanted: &[(ObjectId, u64)],
        phase: Option<&'static str>,
    ) -> Result<()> {
        let mut missing = Vec::new();
        let mut queued = HashSet::new();
        let mut missing_bytes = 0u64;
        for (id, size) in wanted {
            if queued.insert(*id) && !self.skip.contains(id) && !self.has(id).await {
                missing.push(Hash::from_bytes(id.0));
                missing_bytes += size;
            }
        }
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
            let sizes: HashMap<ObjectId, u64> = wanted.iter().copied().collect();
            let (small, big): (Vec<Hash>, Vec<Hash>) = missing.iter().partition(|h| {
                sizes
                    .get(&ObjectId(*h.as_bytes()))
                    .is_some_and(|n| *n <= SMALL_BLOB)
            });
            missing = big;
            let mut batch = Vec::new();
            let mut batch_bytes = 0u64;
            for (i, h) in small.iter().enumerate() {
                batch.push(*h);
                batch_bytes += sizes[&ObjectId(*h.as_bytes())].max(64 << 10);
                if batch.len() >= 256 || batch_bytes >= 16 << 20 || i + 1 == small.len() {
                    let n = batch.len();
                    self.fetch_small(repo, std::mem::take(&mut batch)).await?;
                    files_done(n);
                    batch_bytes = 0;
                }
            }
            self.finish_writes().await?;
        }
        // Big objects stream straight into a partial file, provider after provider, each
        // attempt resuming where the last stopped; what still fails goes through the
        // iroh-blobs downloader below.
        if let (Sink::Repo(repo), false) = (self.sink, missing.is_empty()) {
            let mut left = Vec::new();
            let sizes: HashMap<ObjectId, u64> = wanted.iter().copied().collect();
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
        }
        Ok(())
    }

    /// Walks from `roots`, fetching what is missing. `stop` holds commits whose closure is
    /// known to be complete locally. With `filter`, only the named paths of the first commit
    /// are walked (and no parents), and the leaves reached are returned.
    async fn run(
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
        self.progress.scan("listing");
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
        }
        self.fetch_missing_as(&blobs, Some("receiving")).await?;
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
struct ChanReader {
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

/// Where big objects stream to before they move into the object store.
fn partial_dir(repo: &Repo) -> PathBuf {
    repo.root().join(".lode").join("partial")
}

/// True for an error caused by a full disk (ENOSPC, EDQUOT).
fn is_disk_full(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
}

/// Reports whether the filesystem holding `dir` has less than 4 MiB free.
fn disk_nearly_full(dir: &Path) -> bool {
    rustix::fs::statvfs(dir).is_ok_and(|s| s.f_bavail.saturating_mul(s.f_frsize) < 4 << 20)
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

fn fetch_store_dir(repo: &Repo) -> PathBuf {
    repo.root().join(".lode").join("fetch-store")
}

/// Opens the transfer store at `dir` (made if missing). One that a killed process left torn
/// (its database cut short before its first commit) is only a cache of what a fetch already
/// verified: it is discarded and made anew, so that the command can go on. One that another
/// process has open is left alone.
async fn open_store(dir: &Path) -> Result<FsStore> {
    let err = |e: &dyn std::fmt::Display| {
        Error::Net(format!("cannot open blob store {}: {e}", dir.display()))
    };
    match FsStore::load(dir).await {
        Ok(s) => Ok(s),
        Err(e) if e.to_string().contains("already open") || !dir.join("blobs.db").exists() => {
            Err(err(&e))
        }
        Err(_) => {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io("cannot remove", dir, e))?;
            FsStore::load(dir).await.map_err(|e| err(&e))
        }
    }
}

async fn close_store(store: FsStore, dir: &Path) {
    let _ = store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Receives a pushed commit: fetches what `repo` lacks of the closure of `new` from the
/// client's providers into `repo`'s store, checked like any fetch. Returns (objects, bytes).
pub async fn receive(
    client: &mut Client,
    repo: &Repo,
    new: ObjectId,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    let peer = client
        .providers
        .first()
        .map(|p| peer_name(p.as_bytes()))
        .unwrap_or_default();
    let dir = repo.root().join(".lode").join("push-in-store");
    let (objects, bytes, _) =
        fetch_into_repo(client, repo, &dir, Want::Plain(vec![new]), &peer, progress).await?;
    Ok((objects, bytes))
}

/// What a fetch brings into a repository.
pub enum Want {
    /// The plaintext closure of these commits.
    Plain(Vec<ObjectId>),
    /// A restricted dataset's sealed envelope and its ciphertexts; with `open`, also the
    /// plaintext (decrypted with this device's key, then checked like any fetched closure).
    Sealed { envelope: ObjectId, open: bool },
}

/// Walks what `want` names into `repo`'s object store through the transfer store at `dir`,
/// stopping at commits the local refs already hold whole. On success the transfer store is
/// deleted and the objects are flushed; on failure it stays, so that a retry resumes.
/// Returns (objects, bytes) received, and for an opened sealed head its manifest.
async fn fetch_into_repo(
    client: &mut Client,
    repo: &Repo,
    dir: &Path,
    want: Want,
    peer: &str,
    progress: &dyn Progress,
) -> Result<(u64, u64, Option<Manifest>)> {
    let dataset = repo.dataset_id()?.to_bytes();
    let mut stop = HashSet::new();
    for prefix in ["heads/", "remotes/", "tags/"] {
        stop.extend(repo.refs(prefix)?.into_iter().map(|(_, id)| id));
    }
    let skip = crate::config::tainted(repo)?;
    repo.release_db();
    let store = open_store(dir).await?;
    let mut walk = Walk {
        space_dir: dir.to_path_buf(),
        client,
        store: &store,
        sink: Sink::Repo(repo),
        progress,
        objects: 0,
        bytes: 0,
        skip,
        writing: None,
    };
    let result = match want {
        Want::Plain(roots) => walk
            .run(roots, &stop, dataset, peer, None)
            .await
            .map(|_| None),
        Want::Sealed { envelope, open } => {
            fetch_sealed(&mut walk, repo, envelope, open, &stop, dataset, peer).await
        }
    };
    let counts = (walk.objects, walk.bytes);
    match result {
        Ok(manifest) => {
            close_store(store, dir).await;
            repo.store().sync()?;
            Ok((counts.0, counts.1, manifest))
        }
        Err(e) => {
            let _ = store.shutdown().await;
            Err(e)
        }
    }
}

/// Fetches a sealed envelope and every ciphertext it lists; with `open`, decrypts and checks
/// the plaintext closure.
async fn fetch_sealed(
    walk: &mut Walk<'_>,
    repo: &Repo,
    envelope: ObjectId,
    open: bool,
    stop: &HashSet<ObjectId>,
    dataset: [u8; 32],
    peer: &str,
) -> Result<Option<Manifest>> {
    let lying = |msg: String| Error::LyingPeer {
        peer: peer.to_string(),
        msg,
    };
    walk.fetch_missing(&[(envelope, 0)]).await?;
    let env = sealed::read_envelope(repo, &envelope)
        .map_err(|e| lying(format!("its signed head names a bad envelope: {e}")))?;
    if env.dataset != dataset {
        return Err(lying("its envelope belongs to another dataset".into()));
    }
    if !open {
        walk.fetch_missing_as(&env.objects, Some("receiving"))
            .await?;
        return Ok(None);
    }
    // A reader fetches the keyring and manifest, then only the ciphertexts of the plaintext
    // it lacks, decrypts them and keeps the plaintext.
    let size = |id: &ObjectId| {
        env.objects
            .iter()
            .find(|(c, _)| c == id)
            .map_or(0, |(_, n)| *n)
    };
    walk.fetch_missing(&[
        (env.keyring, size(&env.keyring)),
        (env.manifest, size(&env.manifest)),
    ])
    .await?;
    let (manifest, ids) = sealed::read_manifest(repo, &env)?;
    let need = sealed::needed(repo, &env, &manifest);
    let keep = sealed::holds_ciphertext(repo)?;
    // A reader decrypts large ciphertexts while they stream in (verified chunk by chunk),
    // so nothing of them is written; if that fails, they go through the transfer store
    // (resumable, every provider) and are decrypted from there.
    let plain_of: HashMap<ObjectId, ObjectId> =
        manifest.map.iter().map(|(p, (c, _))| (*c, *p)).collect();
    let mut rest = Vec::new();
    for (cipher, size) in need {
        let streamed = match plain_of.get(&cipher) {
            Some(plain) if size > SMALL_BLOB && !keep => walk
                .stream_decrypt(repo, cipher, *plain, &ids, env.padded)
                .await
                .is_ok(),
            _ => false,
        };
        if !streamed {
            rest.push((cipher, size));
        }
    }
    walk.fetch_missing(&rest).await?;
    sealed::decrypt_missing(repo, &manifest, &ids, keep, env.padded)?;
    let roots: Vec<ObjectId> = manifest
        .main
        .iter()
        .copied()
        .chain(manifest.tags.iter().map(|(_, id)| *id))
        .collect();
    // Everything is local now: this checks the decrypted commits and trees (signatures,
    // names, symlinks) exactly as for a plaintext fetch, without fetching.
    walk.run(roots, stop, dataset, peer, None).await?;
    Ok(Some(manifest))
}

/// Saves or replaces a remote.
pub fn set_remote(repo: &Repo, name: &str, ticket: &Ticket) -> Result<()> {
    let _lock = repo.lock()?;
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    tx.open_table(CONFIG)?.insert(
        format!("remote/{name}").as_str(),
        ticket.to_string().as_bytes(),
    )?;
    tx.commit()?;
    Ok(())
}

/// Removes a remote and its tracking refs.
pub fn remove_remote(repo: &Repo, name: &str) -> Result<()> {
    let _lock = repo.lock()?;
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    let existed = tx
        .open_table(CONFIG)?
        .remove(format!("remote/{name}").as_str())?
        .is_some();
    if !existed {
        return Err(Error::UnknownRemote(name.to_string()));
    }
    tx.open_table(REFS)?
        .remove(format!("remotes/{name}/main").as_str())?;
    tx.commit()?;
    Ok(())
}

/// Lists remotes and their tickets.
pub fn remotes(repo: &Repo) -> Result<Vec<(String, Ticket)>> {
    let db = repo.db()?;
    let tx = db.db.begin_read()?;
    let t = tx.open_table(CONFIG)?;
    let mut out = Vec::new();
    for item in t.range("remote/"..)? {
        let (k, v) = item?;
        let Some(name) = k.value().strip_prefix("remote/") else {
            break;
        };
        let text = String::from_utf8_lossy(v.value()).to_string();
        out.push((name.to_string(), text.parse()?));
    }
    Ok(out)
}

/// Looks up a remote's ticket.
pub fn remote(repo: &Repo, name: &str) -> Result<Ticket> {
    remotes(repo)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::UnknownRemote(name.to_string()))
}

/// Fetches the dataset of `remote` into `repo` and moves `remotes/NAME/main`; new tags are
/// created locally (existing ones are left alone).
pub async fn fetch(
    repo: &Repo,
    remote_name: &str,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    let ticket = remote(repo, remote_name)?;
    fetch_ticket(repo, remote_name, &ticket, cap, opts, progress).await
}

/// Stores `cap` as the capability this device presents for the repository's dataset, after
/// checking that it is for this dataset and held by this device.
pub fn use_capability(repo: &Repo, cap: &Bundle) -> Result<()> {
    let dataset = repo.dataset_id()?.to_bytes();
    if cap.dataset() != dataset {
        return Err(trust::TrustError::WrongDataset {
            got: hex::encode(cap.dataset()),
            want: hex::encode(dataset),
        }
        .into());
    }
    let me = repo.device_key()?.verifying_key().to_bytes();
    if cap.leaf().body.audience != me {
        return Err(trust::TrustError::WrongAudience {
            holder: hex::encode(cap.leaf().body.audience),
            peer: hex::encode(me),
        }
        .into());
    }
    let _lock = repo.lock()?;
    access::store_capability(repo, cap)
}

async fn fetch_ticket(
    repo: &Repo,
    remote_name: &str,
    ticket: &Ticket,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    let start = Instant::now();
    let dataset = repo.dataset_id()?.to_bytes();
    if ticket.dataset != dataset {
        return Err(Error::Other(format!(
            "the ticket is for dataset {}, this repository holds dataset {}",
            hex::encode(ticket.dataset),
            hex::encode(dataset)
        )));
    }
    if let Some(c) = &cap {
        use_capability(repo, c)?;
    }
    let _lock = repo.lock()?;
    let cap = match cap {
        Some(c) => Some(c),
        None => access::own_capability(repo)?,
    };
    let mirror = config::is_mirror(repo)?;
    // No database is held while the network is waited on: a peer that does not answer
    // costs its timeout, and `lode serve` (which may be this process, serving a mirror)
    // must be able to read the repository meanwhile.
    repo.release_db();
    let mut client = Client::new(repo.home(), ticket, cap, opts).await?;
    let published = match client.list_refs().await {
        Ok(p) => p,
        Err(e) => {
            client.close().await;
            return Err(e);
        }
    };
    if let Err(e) = check_not_older(repo, &published) {
        client.close().await;
        return Err(e);
    }
    let peer = published.peer.clone();
    let dir = fetch_store_dir(repo);
    let want = match (published.head.body.private, published.refs.head) {
        (true, Some(envelope)) => Want::Sealed {
            envelope,
            open: !mirror,
        },
        (true, None) => Want::Plain(vec![]),
        (false, _) => Want::Plain(published.refs.roots()),
    };
    let fetched = fetch_into_repo(&mut client, repo, &dir, want, &peer, progress).await;
    let (objects, bytes, manifest) = match fetched {
        Ok(counts) => counts,
        Err(e) => {
            client.close().await;
            return Err(e);
        }
    };
    // The refs to record: the plaintext ones (from the manifest of a restricted dataset); a
    // mirror of a restricted dataset has none, only the head it serves on.
    let refs = match manifest {
        Some(m) => Refs {
            head: m.main,
            tags: m.tags,
        },
        None if published.head.body.private => Refs::default(),
        None => published.refs.clone(),
    };
    {
        let db = repo.db()?;
        let tx = db.db.begin_write()?;
        {
            let mut t = tx.open_table(REFS)?;
            if let Some(h) = refs.head {
                t.insert(
                    format!("remotes/{remote_name}/main").as_str(),
                    h.to_hex().as_str(),
                )?;
            }
            for (name, id) in &refs.tags {
                let key = format!("tags/{name}");
                if t.get(key.as_str())?.is_none() {
                    t.insert(key.as_str(), id.to_hex().as_str())?;
                }
            }
        }
        tx.commit()?;
    }
    access::store_revocations(repo, &published.revocations)?;
    access::store_head(repo, &published.head)?;
    if published.head.body.private && !config::is_private(repo)? {
        config::put_private(repo, true)?;
    }
    let report = client.report(refs.head, objects, bytes, start);
    client.close().await;
    crate::net::uri::remember(repo.home(), ticket);
    Ok(report)
}

/// Refuses a head older than the newest this repository has seen (a stale or rolling-back
/// provider), and a different head with the same sequence number (a fork).
fn check_not_older(repo: &Repo, published: &Published) -> Result<()> {
    // The head's writer must not be revoked by what this repository already knows either.
    let mut known = access::revocations(repo)?;
    known.extend(published.revocations.iter().cloned());
    let revoked = access::revoked_set(&known);
    let dataset = repo.dataset_id()?.to_bytes();
    SignedHead::decode(
        &published.head.encode(),
        &dataset,
        &revoked,
        Some(access::now()),
    )
    .map_err(|e| Error::LyingPeer {
        peer: published.peer.clone(),
        msg: format!("serves a head that does not verify: {e}"),
    })?;
    let Some(stored) = access::stored_head(repo)? else {
        return Ok(());
    };
    let (got, have) = (published.head.body.seq, stored.body.seq);
    if got < have {
        return Err(Error::Rollback {
            peer: published.peer.clone(),
            got,
            have,
        });
    }
    if got == have && published.head.encode() != stored.encode() {
        return Err(Error::LyingPeer {
            peer: published.peer.clone(),
            msg: format!("serves a different head with the same sequence number {got} (a writer's key may be compromised)"),
        });
    }
    Ok(())
}

/// How to clone.
#[derive(Default)]
pub struct CloneOptions {
    /// The capability ticket to present (and keep).
    pub cap: Option<Bundle>,
    /// Keep what the dataset publishes without decrypting or checking out (a mirror).
    pub mirror: bool,
    /// Check out (now and later) by hard-linking files from the object store.
    pub link: bool,
}

/// Clones the dataset of `ticket` into `dir` (resuming an interrupted clone of the same
/// dataset there) and checks out its `main` commit.
pub async fn clone(
    dir: &Path,
    home: Home,
    repo_opts: RepoOptions,
    ticket: &Ticket,
    how: CloneOptions,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<(Repo, FetchReport)> {
    let CloneOptions { cap, mirror, link } = how;
    let existed = dir.exists();
    let resumable = dir.join(".lode").is_dir();
    // Like git: a clone goes into a new or empty directory, never over a user's files (what a
    // killed clone or init of lode left there does not count).
    if existed && !resumable {
        let mut theirs: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("cannot read", dir, e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !matches!(
                    crate::leftover::parse(n),
                    Some((crate::leftover::Kind::Init, _))
                )
            })
            .collect();
        if !theirs.is_empty() {
            theirs.sort();
            return Err(Error::NotEmpty {
                dir: dir.to_path_buf(),
                entries: theirs.len(),
                first: theirs.swap_remove(0),
            });
        }
    }
    // A clone of the same dataset already there is resumed: one killed before its checkout
    // finished (no commit yet), or one killed after (a clone of this dataset's `origin`):
    // that is completed like a pull, if its `main` has not moved away from the remote's.
    let mut done_before = false;
    let repo = if resumable {
        let repo = Repo::discover(dir, home, repo_opts)?;
        if repo.dataset_id()?.to_bytes() != ticket.dataset {
            return Err(Error::AlreadyRepo(repo.root().to_path_buf()));
        }
        if repo.head()?.commit.is_some() {
            if repo.head()?.branch.is_none() || remote(&repo, "origin").is_err() {
                return Err(Error::AlreadyRepo(repo.root().to_path_buf()));
            }
            done_before = true;
        }
        repo
    } else {
        Repo::init_clone(dir, home, repo_opts, ticket.dataset)?
    };
    set_remote(&repo, "origin", ticket)?;
    if mirror {
        config::set_mirror(&repo)?;
    }
    if link {
        config::set_checkout_links(&repo)?;
    }
    let report = match fetch_ticket(&repo, "origin", ticket, cap, opts, progress).await {
        Ok(r) => r,
        Err(e) => {
            // Nothing received: leave no half-made clone behind. Once data arrived, keep it
            // so that running the clone again resumes.
            let partial = std::fs::read_dir(partial_dir(&repo))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            // A peer that lied or refused: nothing of it is worth resuming.
            let refused = matches!(
                e,
                Error::LyingPeer { .. }
                    | Error::NotAuthorized { .. }
                    | Error::Trust(_)
                    | Error::Rollback { .. }
            );
            if refused || (!fetch_store_dir(&repo).exists() && !partial) {
                if !existed {
                    let _ = std::fs::remove_dir_all(dir);
                } else if !resumable {
                    // The directory was the user's (empty): remove only what this clone made.
                    let _ = std::fs::remove_dir_all(dir.join(".lode"));
                }
            }
            return Err(e);
        }
    };
    if let (Some(head), false) = (&report.head, mirror) {
        let id: ObjectId = head
            .parse()
            .map_err(|_| Error::Other("bad head id".into()))?;
        match repo.main()? {
            // Checked out before the kill: nothing is left to do.
            Some(local) if done_before && local == id => {}
            Some(local) if done_before && !is_ancestor(&repo, &local, &id)? => {
                return Err(Error::AlreadyRepo(repo.root().to_path_buf()));
            }
            _ => {
                crate::ops::checkout::fast_forward(&repo, id, progress)?;
            }
        }
    }
    Ok((repo, report))
}

/// Fetches from `remote`, then fast-forwards `main` and the working tree to the remote's
/// `main` (refusing to overwrite uncommitted changes, and refusing when histories diverged).
pub async fn pull(
    repo: &Repo,
    remote_name: &str,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    let report = fetch(repo, remote_name, cap, opts, progress).await?;
    let Some(remote_head) = report
        .head
        .as_ref()
        .and_then(|h| h.parse::<ObjectId>().ok())
    else {
        return Ok(report);
    };
    let local = repo.main()?;
    if let Some(local) = local {
        if local == remote_head || is_ancestor(repo, &remote_head, &local)? {
            return Ok(report);
        }
        if !is_ancestor(repo, &local, &remote_head)? {
            return Err(Error::Diverged {
                what: "main".into(),
                local: local.short(),
                remote: remote_head.short(),
            });
        }
    }
    crate::ops::checkout::fast_forward(repo, remote_head, progress)?;
    Ok(report)
}

pub use crate::ops::history::is_ancestor;

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
async fn compare_destination(
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
    how: GetOptions,
    paths: &[String],
    to: &Path,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<GetReport> {
    let GetOptions { cap, rev, force } = how;
    let start = Instant::now();
    if let Some(c) = &cap {
        for p in paths {
            if !trust::in_scope(&c.leaf().body.scope, p.trim_matches('/')) {
                return Err(trust::TrustError::OutOfScope(p.clone()).into());
            }
        }
    }
    let mut client = Client::new(home, ticket, cap, opts).await?;
    let published = match client.list_refs().await {
        Ok(p) => p,
        Err(e) => {
            client.close().await;
            return Err(e);
        }
    };
    if published.head.body.private {
        client.close().await;
        return Err(Error::Other(
            "a restricted dataset is fetched whole (its paths are encrypted): use `lode clone`"
                .into(),
        ));
    }
    let head = match rev.as_deref() {
        None => published.refs.head.ok_or(Error::NoCommits)?,
        Some(r) => match published.refs.tags.iter().find(|(n, _)| n == r) {
            Some((_, id)) => *id,
            None => r.parse::<ObjectId>().map_err(|_| {
                Error::UnknownRev(format!("{r} (a tag of the dataset or a full commit id)"))
            })?,
        },
    };
    let peer = published.peer.clone();
    crate::net::uri::remember(home, ticket);
    std::fs::create_dir_all(to).map_err(|e| Error::io("cannot create directory", to, e))?;
    let to = std::path::absolute(to).map_err(|e| Error::io("cannot resolve", to, e))?;
    let dir = to.join(".lode-get");
    let store = open_store(&dir).await?;
    let mut walk = Walk {
        space_dir: dir.clone(),
        client: &mut client,
        store: &store,
        sink: Sink::Store,
        progress,
        objects: 0,
        bytes: 0,
        skip: HashSet::new(),
        writing: None,
    };
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
            client.close().await;
            return Err(e);
        }
    };
    for p in paths {
        if !leaves.iter().any(|l| under(&l.path, p)) {
            close_store(store, &dir).await;
            client.close().await;
            return Err(Error::PathNotInRev {
                path: p.clone(),
                rev: head.short(),
            });
        }
    }
    // A file already there is never replaced by another content unless forced (it may be
    // the user's edit); one that already holds what would be written is left as is.
    let (same, differ) = compare_destination(&store, &leaves, &to).await;
    if !differ.is_empty() && !force {
        close_store(store, &dir).await;
        client.close().await;
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
                    let link = |tmp: &Path| {
                        let _ = std::fs::remove_file(tmp);
                        std::os::unix::fs::symlink(
                            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target),
                            tmp,
                        )
                        .map_err(|e| Error::io("cannot create symlink", tmp, e))
                    };
                    let tmp = crate::leftover::in_tmp_dir(&out, "get");
                    link(&tmp)?;
                    if let Err(e) = rename_into(&tmp, &dest) {
                        let Some(parent) = dest.parent().filter(|_| is_cross_device(&e)) else {
                            return Err(e);
                        };
                        let tmp = crate::leftover::beside(parent);
                        link(&tmp)?;
                        rename_into(&tmp, &dest)?;
                    }
                    files.push(leaf.path.clone());
                }
                EntryKind::File | EntryKind::Executable => {
                    let tmp = crate::leftover::in_tmp_dir(&out, "get");
                    export_file(&store, leaf, &tmp).await?;
                    crate::leftover::test_slowdown();
                    if let Err(e) = rename_into(&tmp, &dest) {
                        let Some(parent) = dest.parent().filter(|_| is_cross_device(&e)) else {
                            return Err(e);
                        };
                        let tmp = crate::leftover::beside(parent);
                        export_file(&store, leaf, &tmp).await?;
                        rename_into(&tmp, &dest)?;
                    }
                    files.push(leaf.path.clone());
                }
            }
        }
        Ok(())
    }
    .await;
    close_store(store, &dir).await;
    let transfer = client.report(Some(head), objects, bytes, start);
    client.close().await;
    result?;
    Ok(GetReport {
        commit: head.to_hex(),
        files,
        transfer,
    })
}

/// Exports blob `leaf` of `store` to the temp path `tmp` with the entry's mode (removed
/// again on failure).
async fn export_file(store: &FsStore, leaf: &Leaf, tmp: &Path) -> Result<()> {
    let _ = std::fs::remove_file(tmp);
    let done = store
        .export(Hash::from_bytes(leaf.id.0), tmp)
        .await
        .map_err(|e| Error::Net(format!("cannot write {}: {e}", tmp.display())));
    let done = done.and_then(|_| {
        use std::os::unix::fs::PermissionsExt;
        let mode = if leaf.kind == EntryKind::Executable {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("cannot set permissions of", tmp, e))
    });
    if done.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    done
}

/// Renames temp path `tmp` over `dest` (removing `tmp` when that fails).
fn rename_into(tmp: &Path, dest: &Path) -> Result<()> {
    std::fs::rename(tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::io("cannot write", dest, e)
    })
}

fn is_cross_device(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::CrossesDevices)
}

/// Checks a provider's listing: every revocation signed by the dataset owner, the head signed
/// by a writer (not one whose ticket is revoked), and every revocation the head lists present.
pub fn verify_listing(listing: &Listing, dataset: &[u8; 32], peer: &str) -> Result<Published> {
    let lying = |msg: String| Error::LyingPeer {
        peer: peer.to_string(),
        msg,
    };
    if listing.revocations.len() > trust::MAX_REVOCATIONS {
        return Err(lying("too many revocations".into()));
    }
    let revocations = listing
        .revocations
        .iter()
        .map(|b| Revocation::decode(b, dataset))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| lying(format!("serves a bad revocation: {e}")))?;
    let revoked = access::revoked_set(&revocations);
    let head = SignedHead::decode(&listing.head, dataset, &revoked, Some(access::now()))
        .map_err(|e| lying(format!("serves a head that does not verify: {e}")))?;
    let have: HashSet<[u8; 32]> = revocations.iter().map(Revocation::id).collect();
    if let Some(missing) = head.body.revocations.iter().find(|id| !have.contains(*id)) {
        return Err(lying(format!(
            "withholds revocation {} that its head lists",
            hex::encode(missing)
        )));
    }
    Ok(Published {
        refs: head_refs(Some(&head)),
        head,
        revocations,
        peer: peer.to_string(),
    })
}

/// Reads a ticket argument: an address ticket (`lode1…`) or a capability ticket
/// (`lodecap1…`, whose hints give the addresses). `cap` is a separately given capability.
pub fn resolve_ticket(arg: &str, cap: Option<&str>) -> Result<(Ticket, Option<Bundle>)> {
    let cap: Option<Bundle> = cap.map(str::parse).transpose()?;
    if trust::is_capability(arg) {
        if cap.is_some() {
            return Err(Error::Other(
                "give one capability ticket: either as the ticket argument or with --ticket".into(),
            ));
        }
        let bundle: Bundle = arg.parse()?;
        if bundle.hints.is_empty() {
            return Err(Error::Other(
                "this capability ticket carries no provider address; give the dataset's address ticket (lode1…) and pass this one with --ticket".into(),
            ));
        }
        let ticket = Ticket {
            dataset: bundle.dataset(),
            providers: bundle.hints.clone(),
        };
        return Ok((ticket, Some(bundle)));
    }
    let ticket: Ticket = arg.parse()?;
    if let Some(c) = &cap {
        if c.dataset() != ticket.dataset {
            return Err(Error::Other(format!(
                "the capability ticket is for dataset {}, the address ticket for {}",
                hex::encode(c.dataset()),
                hex::encode(ticket.dataset)
            )));
        }
    }
    Ok((ticket, cap))
}

/// Reads the ticket a running `lode serve` wrote for this repository.
pub fn served_ticket(repo: &Repo) -> Result<Option<Ticket>> {
    let path = repo.root().join(".lode").join("serve.ticket");
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t.parse()?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}
