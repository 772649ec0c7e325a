//! Many small objects: `GetMany` batches, several in flight over the providers (and, with a
//! swarm session, the swarm peers: `net::swarm::small`), checked and written by writer
//! threads off the network task.

use std::collections::HashMap;

use iroh_blobs::Hash;
use n0_future::{BufferedStreamExt, StreamExt};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::pieces;
use crate::net::swarm::session::Gate;
use crate::repo::Repo;

use super::walk::Walk;

impl Walk<'_> {
    /// Fetches the small objects `small` (sizes in `sizes`) in `GetMany` batches and lands
    /// them in `repo`'s store; `files_done` counts them as they arrive.
    pub(super) async fn land_small(
        &mut self,
        repo: &Repo,
        small: Vec<Hash>,
        sizes: &HashMap<ObjectId, u64>,
        files_done: &(dyn Fn(usize) + Sync),
    ) -> Result<()> {
        let swarm = self.client.swarm.is_some();
        let batches = cut_batches(small, sizes, swarm);
        // A repository whose checkouts hard-link files from the store needs a file per
        // object; any other takes them in packs.
        let packed = !crate::config::checkout_links(repo)?;
        // The transfer is long: other processes (the owner's `status`) may open the database.
        repo.release_db();
        let gate = self.gate();
        let mut landing = Landing::start(repo.store().clone(), packed, gate);
        // One batch (a level of commits and trees) is not worth dialling the swarm for,
        // unless the providers fail it (the publisher may leave once the swarm holds all).
        let failed = match (swarm, batches.len() > 1) {
            (true, true) => {
                self.swarm_batches(batches, sizes, &mut landing, files_done)
                    .await
            }
            (true, false) => match self.fetch_batches(batches, &mut landing, files_done).await {
                Ok(left) if !left.is_empty() => {
                    self.swarm_batches(left, sizes, &mut landing, files_done)
                        .await
                }
                got => got,
            },
            (false, _) => self.fetch_batches(batches, &mut landing, files_done).await,
        };
        self.objects += landing.finish().await?;
        // Batches a provider failed go one at a time through the slower path that tries
        // the other providers and names a peer that lies.
        for batch in failed? {
            let n = batch.len();
            self.fetch_small(repo, batch).await?;
            files_done(n);
        }
        self.finish_writes().await?;
        Ok(())
    }

    /// Into a get's transfer store, which its swarm session serves from: the small objects
    /// `small` (sizes in `sizes`) in `GetMany` batches dealt across the providers and the swarm
    /// peers that hold them, as a clone takes them ([`Walk::land_small`]); each batch is
    /// imported into the store and then served. Returns the objects nobody delivered (one
    /// batch's worth is not worth dialling the swarm for: all of it is returned).
    pub(super) async fn store_small(
        &mut self,
        small: Vec<Hash>,
        sizes: &HashMap<ObjectId, u64>,
        files_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Hash>> {
        let batches = cut_batches(small, sizes, true);
        if batches.len() < 2 {
            return Ok(batches.concat());
        }
        let mut landing = Landing::importing(self.store.clone(), self.gate());
        let left = self
            .swarm_batches(batches, sizes, &mut landing, files_done)
            .await;
        self.objects += landing.finish().await?;
        Ok(left?.concat())
    }

    /// Fetches small objects into memory (verified while they stream) and writes them to the
    /// repository's object store on a blocking thread, while the next batch downloads
    /// ([`Walk::finish_writes`] waits for it).
    pub(super) async fn fetch_small(&mut self, repo: &Repo, hashes: Vec<Hash>) -> Result<()> {
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
        let gate = self.gate();
        self.writing = Some(tokio::task::spawn_blocking(move || -> Result<u64> {
            land(&store, &blobs, gate.as_ref())?;
            Ok(blobs.len() as u64)
        }));
        Ok(())
    }

    /// The gate of the swarm session, when objects landing now may be served to its peers
    /// (a verified head reaches them).
    fn gate(&self) -> Option<Gate> {
        self.served()
            .filter(|_| self.serve_landed)
            .map(|s| s.gate())
    }

    /// The swarm session of this download, when it serves other peers.
    pub(super) fn served(&self) -> Option<&crate::net::swarm::Session> {
        self.client.swarm.as_ref().filter(|s| s.serves())
    }

    /// [`Walk::fetch_batches`] with a swarm session: the batches (their objects' sizes in
    /// `sizes`) dealt across the providers and the swarm peers that hold them
    /// (`net::swarm::small`). Returns the batches nobody delivered.
    async fn swarm_batches(
        &mut self,
        batches: Vec<Vec<Hash>>,
        sizes: &HashMap<ObjectId, u64>,
        landing: &mut Landing,
        files_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<Hash>>> {
        let origins = self.client.batch_conns().await.unwrap_or_default();
        let session = self.client.swarm.as_ref().expect("checked by the caller");
        let mut land = |blobs: Vec<(Hash, bytes::Bytes)>| {
            files_done(blobs.len());
            landing.send(blobs).is_ok()
        };
        let batch_bytes: Vec<u64> = batches
            .iter()
            .map(|b| b.iter().map(|h| sizes[&ObjectId(*h.as_bytes())]).sum())
            .collect();
        let got = crate::net::swarm::small::fetch(
            session,
            &self.client.net,
            origins,
            batches,
            &batch_bytes,
            &mut land,
            self.progress,
        )
        .await;
        self.bytes += got.bytes;
        self.client.peers.extend(got.peers);
        for p in got.failed_origins {
            self.client.batch_failed(p);
        }
        Ok(got.left)
    }

    /// Fetches `batches` of small objects with up to [`BATCHES_IN_FLIGHT`] `GetMany`
    /// requests at once, spread over the providers that answer them (one request waits for
    /// the provider's first byte: one at a time, the link would idle between batches), and
    /// hands each received batch to `landing`. Returns the batches that failed (their
    /// provider is then asked for no more batches).
    async fn fetch_batches(
        &mut self,
        batches: Vec<Vec<Hash>>,
        landing: &mut Landing,
        files_done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<Hash>>> {
        let conns = match self.client.batch_conns().await {
            Ok(c) => c,
            Err(_) => return Ok(batches),
        };
        let progress = self.progress;
        let counted = |n: u64| progress.inc(n);
        let counted = &counted;
        let mut received = n0_future::stream::iter(batches.into_iter().enumerate())
            .map(|(i, batch)| {
                let (p, conn) = conns[i % conns.len()].clone();
                async move {
                    let got = pieces::get_many(&conn, &batch, counted).await;
                    (p, batch, got)
                }
            })
            .buffered_unordered(BATCHES_IN_FLIGHT);
        let mut failed = Vec::new();
        while let Some((p, batch, got)) = received.next().await {
            match got {
                Ok(blobs) => {
                    self.client.batch_served(p);
                    let n = blobs.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
                    self.bytes += n;
                    if let Some(session) = &self.client.swarm {
                        session.count_received(&p, n);
                    }
                    files_done(blobs.len());
                    if landing.send(blobs).is_err() {
                        // A writer failed: its error is what `Landing::finish` returns.
                        break;
                    }
                }
                Err(_) => {
                    self.client.batch_failed(p);
                    failed.push(batch);
                }
            }
        }
        drop(received);
        Ok(failed)
    }

    /// Waits until the small objects fetched so far are in the object store.
    pub(super) async fn finish_writes(&mut self) -> Result<()> {
        if let Some(job) = self.writing.take() {
            self.objects += job
                .await
                .map_err(|e| Error::Other(format!("object writer failed: {e}")))??;
        }
        Ok(())
    }
}

/// `small` (sizes in `sizes`) cut into `GetMany` batches in id order: downloaders of one
/// head cut the same batches, which they can then trade in a swarm, whose batches are
/// smaller so that there are more to trade.
fn cut_batches(
    mut small: Vec<Hash>,
    sizes: &HashMap<ObjectId, u64>,
    swarm: bool,
) -> Vec<Vec<Hash>> {
    small.sort_unstable();
    let (most, most_bytes) = if swarm {
        (SWARM_BATCH_OBJECTS, SWARM_BATCH_BYTES)
    } else {
        (BATCH_OBJECTS, BATCH_BYTES)
    };
    let mut batches = vec![Vec::new()];
    let mut batch_bytes = 0u64;
    for h in small {
        let last = batches.last_mut().expect("never empty");
        last.push(h);
        batch_bytes += sizes[&ObjectId(*h.as_bytes())];
        if last.len() >= most || batch_bytes >= most_bytes {
            batches.push(Vec::new());
            batch_bytes = 0;
        }
    }
    batches.retain(|b| !b.is_empty());
    batches
}

/// Small objects per `GetMany` request, and bytes (of their sizes) per request.
const BATCH_OBJECTS: usize = 256;
const BATCH_BYTES: u64 = 4 << 20;
/// The same with a swarm session: smaller batches, more of them to trade between peers.
const SWARM_BATCH_OBJECTS: usize = 64;
const SWARM_BATCH_BYTES: u64 = 1 << 20;
/// `GetMany` requests in flight at once (at most 64 MiB of small objects in memory).
const BATCHES_IN_FLIGHT: usize = 16;
/// Received batches waiting for a writer (bounds the memory when the disk is slower).
const LANDING_QUEUE: usize = 8;
/// Threads that write received small objects.
const WRITERS: usize = 2;
/// Each writer appends the objects it receives to a pack of its own, named (and so made
/// visible) once it holds this many bytes, and at the end: a clone of 300,000 small files
/// creates a few packs instead of 300,000 object files beside the working files.
const PACK_BYTES: u64 = 64 << 20;
/// A download that serves its swarm also names a pack once its first object waited this
/// long, so that what it landed is soon served (objects are in the store only once their
/// pack is named): a pack a second or so per writer, not one per batch.
const SWARM_PACK_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks received blobs against their ids and writes them into `store`; then lets the
/// swarm session behind `gate` (if any) serve them.
fn land(
    store: &crate::store::Store,
    blobs: &[(Hash, bytes::Bytes)],
    gate: Option<&Gate>,
) -> Result<u64> {
    let landed = store.put_many(&as_objects(blobs))?;
    if let Some(gate) = gate {
        gate.allow(blobs.iter().map(|(h, _)| *h));
    }
    Ok(landed)
}

/// Lets the swarm session behind `gate` (if any) serve `hashes`, now in the store.
fn open_gate(gate: Option<&Gate>, hashes: &mut Vec<Hash>) {
    match gate {
        Some(gate) => gate.allow(hashes.drain(..)),
        None => hashes.clear(),
    }
}

/// Received blobs as (id, bytes) for the store.
fn as_objects(blobs: &[(Hash, bytes::Bytes)]) -> Vec<(ObjectId, &[u8])> {
    blobs
        .iter()
        .map(|(h, b)| (ObjectId(*h.as_bytes()), &b[..]))
        .collect()
}

/// One writer thread of [`Landing`]: the pack it appends received batches to, and the
/// objects in that pack not yet served to the swarm (they are once it is named: before,
/// the store does not hold them).
struct Writer {
    store: crate::store::Store,
    /// False in a repository whose checkouts hard-link: a file per object, no pack.
    packed: bool,
    gate: Option<Gate>,
    pack: crate::store::pack::PackWriter,
    in_pack: Vec<Hash>,
    /// When the first object of the current pack arrived.
    begun: std::time::Instant,
}

impl Writer {
    /// Checks and writes one received batch; names the pack when it is full, or, in a
    /// sharing download, when its first object has waited [`SWARM_PACK_AGE`].
    fn land(&mut self, blobs: &[(Hash, bytes::Bytes)]) -> Result<()> {
        if !self.packed {
            return land(&self.store, blobs, self.gate.as_ref()).map(|_| ());
        }
        if self.in_pack.is_empty() {
            self.begun = std::time::Instant::now();
        }
        self.pack.add_checked(&as_objects(blobs))?;
        self.in_pack.extend(blobs.iter().map(|(h, _)| *h));
        let due = self.gate.is_some() && self.begun.elapsed() >= SWARM_PACK_AGE;
        if self.pack.bytes() >= PACK_BYTES || due {
            self.name_pack()?;
        }
        Ok(())
    }

    /// Names the current pack (its objects are in the store from now on) and serves them.
    fn name_pack(&mut self) -> Result<()> {
        let full = std::mem::replace(&mut self.pack, self.store.pack_writer().for_missing());
        full.finish()?;
        open_gate(self.gate.as_ref(), &mut self.in_pack);
        Ok(())
    }
}

/// Writers of received small objects: [`WRITERS`] threads off the network task, each
/// checking whole batches and appending them to its pack
/// ([`crate::store::pack::PackWriter::add_checked`]). The first error stops them all (an
/// unnamed pack leaves nothing).
struct Landing {
    tx: Option<std::sync::mpsc::SyncSender<Vec<(Hash, bytes::Bytes)>>>,
    workers: Vec<std::thread::JoinHandle<Result<u64>>>,
}

impl Landing {
    fn start(store: crate::store::Store, packed: bool, gate: Option<Gate>) -> Landing {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Hash, bytes::Bytes)>>(LANDING_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..WRITERS)
            .map(|_| {
                let (rx, stop, store, gate) =
                    (rx.clone(), stop.clone(), store.clone(), gate.clone());
                std::thread::spawn(move || -> Result<u64> {
                    let mut writer = Writer {
                        pack: store.pack_writer().for_missing(),
                        store,
                        packed,
                        gate,
                        in_pack: Vec::new(),
                        begun: std::time::Instant::now(),
                    };
                    let mut landed = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let next = rx
                            .lock()
                            .map_err(|_| Error::Other("writer failed".into()))?
                            .recv();
                        let Ok(blobs) = next else { break };
                        if let Err(e) = writer.land(&blobs) {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        landed += blobs.len() as u64;
                    }
                    if !stop.load(Ordering::Relaxed) {
                        writer.name_pack()?;
                    }
                    Ok(landed)
                })
            })
            .collect();
        Landing {
            tx: Some(tx),
            workers,
        }
    }

    /// A landing into a get's transfer store (an iroh-blobs store) instead of the object
    /// store: one thread imports each batch (every object already verified against its id
    /// while it streamed; the store hashes it again, and a mismatch stops the landing), then
    /// lets the swarm session behind `gate` (if any) serve it.
    fn importing(store: iroh_blobs::store::fs::FsStore, gate: Option<Gate>) -> Landing {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Hash, bytes::Bytes)>>(LANDING_QUEUE);
        let runtime = tokio::runtime::Handle::current();
        let worker = std::thread::spawn(move || -> Result<u64> {
            let mut landed = 0;
            while let Ok(blobs) = rx.recv() {
                runtime.block_on(async {
                    for (h, b) in &blobs {
                        let tag = store
                            .add_bytes(b.clone())
                            .temp_tag()
                            .await
                            .map_err(|e| Error::Net(format!("blob store: {e}")))?;
                        if tag.hash() != *h {
                            return Err(Error::Other(format!(
                                "object {h} changed on its way into the blob store"
                            )));
                        }
                    }
                    Ok(())
                })?;
                if let Some(gate) = &gate {
                    gate.allow(blobs.iter().map(|(h, _)| *h));
                }
                landed += blobs.len() as u64;
            }
            Ok(landed)
        });
        Landing {
            tx: Some(tx),
            workers: vec![worker],
        }
    }

    /// Queues a received batch (waiting while the queue is full); fails when every writer
    /// stopped.
    fn send(&mut self, blobs: Vec<(Hash, bytes::Bytes)>) -> std::result::Result<(), ()> {
        let tx = self.tx.as_ref().ok_or(())?;
        pieces::send_blocking(tx, blobs).map_err(|_| ())
    }

    /// Waits for the writers; returns how many objects they wrote, or the first error.
    async fn finish(mut self) -> Result<u64> {
        self.tx = None;
        let workers = std::mem::take(&mut self.workers);
        let joined = tokio::task::spawn_blocking(move || {
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(Error::Other("object writer panicked".into())))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Other(format!("object writer failed: {e}")))?;
        let mut landed = 0;
        for r in joined {
            landed += r?;
        }
        Ok(landed)
    }
}
