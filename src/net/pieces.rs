//! Verified range streaming from iroh-blobs providers, and the multi-provider download of
//! one big object in pieces (BitTorrent's strength: several sources at once).
//!
//! A big object is cut into at most 64 pieces of at least 4 MiB, each a whole number of
//! 16 KiB chunk groups. One worker per provider, with two requests in flight on one
//! connection, takes the next piece from a shared queue and asks its provider for that chunk
//! range; iroh-blobs verifies every group
//! against the object's BLAKE3 id (the BAO proof) before handing it on. A writer thread puts
//! the bytes at their offset in `.lode/partial/ID` and, once a piece is written, marks it in
//! `.lode/partial/ID.pieces` (one byte per piece), so an interrupted download resumes with
//! the missing pieces only. A provider that fails or lies loses its piece back to the queue
//! and stops; the others take over. Faster providers simply take more pieces. A resumed
//! download is hashed whole once more before it enters the object store (pieces marked done
//! by an earlier process are not proven by this one's verification).

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use iroh::endpoint::{Connection, VarInt};
use iroh::EndpointId;
use iroh_blobs::Hash;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::{peer_name, Net, CONNECT_TIMEOUT};
use crate::progress::Progress;

/// BAO chunk group: the unit iroh-blobs verifies and lode resumes from.
pub const GROUP: u64 = 16 << 10;
/// Objects at least this big are fetched in pieces when several providers answer.
pub const SPLIT_MIN: u64 = 32 << 20;
const MAX_PIECES: u64 = 64;
const MIN_PIECE: u64 = 4 << 20;
/// Requests in flight per provider.
const LANES: usize = 2;
/// Longest a provider may send nothing in the middle of a request.
const STALL: std::time::Duration = std::time::Duration::from_secs(30);
/// Bytes handed to the consumer at a time (per-group hand-offs would cost a thread switch
/// every 16 KiB).
const BATCH: usize = 1 << 20;

/// The piece size for an object of `size` bytes (a whole number of groups).
pub fn piece_size(size: u64) -> u64 {
    size.div_ceil(MAX_PIECES).max(MIN_PIECE).div_ceil(GROUP) * GROUP
}

/// Opens an iroh-blobs connection to `provider`.
pub async fn connect(net: &Net, provider: EndpointId) -> Result<Connection> {
    connect_within(net, provider, CONNECT_TIMEOUT).await
}

/// Opens an iroh-blobs connection to `provider`, giving up after `limit`.
pub async fn connect_within(
    net: &Net,
    provider: EndpointId,
    limit: std::time::Duration,
) -> Result<Connection> {
    let unreachable = |msg: String| Error::Unreachable {
        peer: peer_name(provider.as_bytes()),
        msg,
    };
    tokio::time::timeout(limit, net.endpoint.connect(provider, iroh_blobs::ALPN))
        .await
        .map_err(|_| unreachable("no answer".into()))?
        .map_err(|e| unreachable(e.to_string()))
}

/// Streams bytes `start..end` (`end = None`: to the end) of object `id` over `conn`:
/// iroh-blobs verifies every 16 KiB group against `id` before it is handed, in order, to
/// `sink(offset, bytes)` in batches of about 1 MiB; `counted(n)` is told of every verified
/// group. `start` (and `end`, unless it is the object's end) must be multiples of 16 KiB.
pub async fn stream_range(
    conn: &Connection,
    id: ObjectId,
    start: u64,
    end: Option<u64>,
    sink: &(dyn Fn(u64, bytes::Bytes) -> Result<()> + Sync),
    counted: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    use iroh_blobs::get::fsm;
    let first = bao_tree::ChunkNum(start / 1024);
    let ranges = match end {
        Some(e) => {
            iroh_blobs::protocol::ChunkRanges::from(first..bao_tree::ChunkNum(e.div_ceil(1024)))
        }
        None => iroh_blobs::protocol::ChunkRanges::from(first..),
    };
    let req = iroh_blobs::protocol::GetRequest::new(
        Hash::from_bytes(id.0),
        iroh_blobs::protocol::ChunkRangesSeq::from_ranges([ranges]),
    );
    let mut next_offset = start;
    let mut batch = bytes::BytesMut::with_capacity(BATCH);
    let flush = |batch: &mut bytes::BytesMut, end: u64| -> Result<()> {
        let data = std::mem::take(batch).freeze();
        sink(end - data.len() as u64, data)
    };
    let net = |e: &dyn std::fmt::Display| Error::Net(e.to_string());
    // A provider that keeps the connection open but stops sending is dropped after STALL.
    let step = async {
        let connected = fsm::start(conn.clone(), req, Default::default())
            .next()
            .await
            .map_err(|e| net(&e))?;
        let fsm::ConnectedNext::StartRoot(root) = connected.next().await.map_err(|e| net(&e))?
        else {
            return Err(Error::Net("unexpected response".into()));
        };
        root.next().next().await.map_err(|e| net(&e))
    };
    let (mut curr, _size) = within(step).await??;
    let done = loop {
        match within(curr.next()).await? {
            fsm::BlobContentNext::More((next, item)) => {
                if let bao_tree::io::BaoContentItem::Leaf(leaf) = item.map_err(|e| net(&e))? {
                    if leaf.offset != next_offset {
                        return Err(Error::Net("chunks out of order".into()));
                    }
                    let n = leaf.data.len() as u64;
                    batch.extend_from_slice(&leaf.data);
                    next_offset += n;
                    counted(n);
                    if batch.len() >= BATCH {
                        flush(&mut batch, next_offset)?;
                    }
                }
                curr = next;
            }
            fsm::BlobContentNext::Done(done) => break done,
        }
    };
    if !batch.is_empty() {
        flush(&mut batch, next_offset)?;
    }
    if end.is_some_and(|e| next_offset < e) {
        return Err(Error::Net("the provider sent less than asked".into()));
    }
    // Only this request's stream ends; more requests may follow on the connection.
    if let fsm::EndBlobNext::Closing(closing) = done.next() {
        let _ = closing.next().await;
    }
    Ok(())
}

/// Hands `m` to a consumer thread: at once when the channel has room, else waiting off the
/// async workers (`block_in_place` moves the worker's other tasks away, which costs more
/// than the send itself).
pub fn send_blocking<T>(
    tx: &std::sync::mpsc::SyncSender<T>,
    m: T,
) -> std::result::Result<(), std::sync::mpsc::SendError<T>> {
    match tx.try_send(m) {
        Ok(()) => Ok(()),
        Err(std::sync::mpsc::TrySendError::Full(m)) => tokio::task::block_in_place(|| tx.send(m)),
        Err(std::sync::mpsc::TrySendError::Disconnected(m)) => Err(std::sync::mpsc::SendError(m)),
    }
}

/// Awaits `f`, failing when a provider sends nothing for [`STALL`].
async fn within<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(STALL, f)
        .await
        .map_err(|_| Error::Net(format!("sent nothing for {}s", STALL.as_secs())))
}

/// Whether a decoding error means the peer sent bytes that do not hash to what was asked
/// (rather than stopping or breaking off).
pub fn fails_verification(e: &iroh_blobs::get::fsm::DecodeError) -> bool {
    use iroh_blobs::get::fsm::DecodeError;
    matches!(
        e,
        DecodeError::ParentHashMismatch { .. } | DecodeError::LeafHashMismatch { .. }
    )
}

/// Fetches the whole blobs `hashes` over `conn` in one `GetMany` request (one stream, the
/// blobs back to back): iroh-blobs verifies each blob against its hash as it streams.
/// Returns every blob asked for, or fails ([`Error::LyingPeer`], naming the peer, when a blob
/// fails verification); `counted(n)` is told of every blob received.
pub async fn get_many(
    conn: &Connection,
    hashes: &[Hash],
    counted: &(dyn Fn(u64) + Sync),
) -> Result<Vec<(Hash, bytes::Bytes)>> {
    use iroh_blobs::get::fsm;
    let req: iroh_blobs::protocol::GetManyRequest = hashes.iter().copied().collect();
    // The request sorts and deduplicates; children are numbered in that order.
    let order = req.hashes.clone();
    let net = |e: &dyn std::fmt::Display| Error::Net(e.to_string());
    let mut out = Vec::with_capacity(order.len());
    let mut next = within(fsm::start_get_many(conn.clone(), req, Default::default()))
        .await?
        .map_err(|e| net(&e))?;
    loop {
        let child = match next {
            Ok(child) => child,
            Err(closing) => {
                within(closing.next()).await?.map_err(|e| net(&e))?;
                break;
            }
        };
        let Some(&hash) = order.get(child.offset() as usize) else {
            return Err(Error::Net("the provider sent more blobs than asked".into()));
        };
        let (end, data) = within(child.next(hash).concatenate_into_vec())
            .await?
            .map_err(|e| {
                if fails_verification(&e) {
                    Error::LyingPeer {
                        peer: peer_name(conn.remote_id().as_bytes()),
                        msg: format!("object {hash} fails BLAKE3 verification"),
                    }
                } else {
                    net(&e)
                }
            })?;
        counted(data.len() as u64);
        out.push((hash, bytes::Bytes::from(data)));
        next = match end.next() {
            fsm::EndBlobNext::MoreChildren(child) => Ok(child),
            fsm::EndBlobNext::Closing(closing) => Err(closing),
        };
    }
    if out.len() != order.len() {
        return Err(Error::Net(
            "the provider sent fewer blobs than asked".into(),
        ));
    }
    Ok(out)
}

/// Hashes a finished partial download whose beginning an earlier process wrote (so not
/// proven by this process's verification), off the async workers; a file that does not
/// hash to `id` is deleted (with its piece map, if any).
pub fn check_whole(path: &Path, id: ObjectId) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let (got, _) = tokio::task::block_in_place(|| crate::store::hash_reader(f))
        .map_err(|e| Error::io("cannot read", path, e))?;
    if got != id {
        discard(path);
        return Err(Error::ObjectCorrupt { id, path: None });
    }
    Ok(())
}

/// Opens (or creates) a partial download for reading and writing, keeping what it holds.
pub fn open_partial(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))
}

/// Waits (off the async workers) for the thread that wrote a partial download at `path`.
pub async fn join_writer<T: Send + 'static>(
    writer: std::thread::JoinHandle<std::io::Result<T>>,
    path: &Path,
) -> Result<T> {
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| Error::Other(e.to_string()))?
        .unwrap_or_else(|_| Err(std::io::Error::other("writer thread failed")))
        .map_err(|e| Error::io("cannot write", path, e))
}

/// A message to the writer thread.
enum Msg {
    Data(u64, bytes::Bytes),
    /// Piece N is completely written.
    Done(usize),
}

fn map_path(path: &Path) -> PathBuf {
    path.with_extension("pieces")
}

/// Removes a partial download and its piece map.
pub fn discard(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(map_path(path));
}

/// True when `path` is a piecewise partial download (its map exists).
pub fn is_piecewise(path: &Path) -> bool {
    map_path(path).exists()
}

/// What a piecewise download did: bytes received, and the providers that delivered.
pub struct PiecesReport {
    pub bytes: u64,
    pub peers: Vec<String>,
    /// Providers that could not be reached.
    pub unreachable: Vec<EndpointId>,
}

/// Downloads object `id` (`size` bytes) from `providers` at once into `path`, piece by
/// piece, resuming the pieces already marked done (a resumed file is hashed whole at the
/// end). On error the partial file and its map stay for a later resume, except when that
/// final hash does not match (both are deleted).
pub async fn fetch(
    net: &Net,
    providers: &[EndpointId],
    id: ObjectId,
    size: u64,
    path: &Path,
    progress: &dyn Progress,
) -> Result<PiecesReport> {
    let piece = piece_size(size);
    let count = size.div_ceil(piece) as usize;
    let map = map_path(path);
    let io = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(what, p, e)
    };
    let file = open_partial(path)?;
    let mut done = std::fs::read(&map).unwrap_or_default();
    if done.len() != count || file.metadata().map_err(io("cannot read", path))?.len() != size {
        done = vec![0; count];
        file.set_len(size).map_err(io("cannot write", path))?;
        std::fs::write(&map, &done).map_err(io("cannot write", &map))?;
    }
    let map_file = std::fs::OpenOptions::new()
        .write(true)
        .open(&map)
        .map_err(io("cannot open", &map))?;
    let resumed = done.iter().any(|d| *d != 0);
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..count).filter(|i| done[*i] == 0).collect());
    let pending = || !queue.lock().expect("not poisoned").is_empty();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(64);
    let writer_file = file.try_clone().map_err(io("cannot open", path))?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for msg in rx {
            match msg {
                Msg::Data(offset, data) => writer_file.write_all_at(&data, offset)?,
                Msg::Done(i) => map_file.write_all_at(&[1], i as u64)?,
            }
        }
        Ok(())
    });
    let received = AtomicU64::new(0);
    let counted = |n: u64| {
        received.fetch_add(n, Ordering::Relaxed);
        progress.inc(n);
    };
    let send = |m: Msg| {
        send_blocking(&tx, m)
            .map_err(|_| Error::Net("the writer stopped (see the write error)".into()))
    };
    let sink = |offset: u64, data: bytes::Bytes| send(Msg::Data(offset, data));
    let delivered: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let unreachable: Mutex<Vec<EndpointId>> = Mutex::new(Vec::new());
    let mut live: Vec<EndpointId> = providers.to_vec();
    let mut last_error = None;
    // Each round runs one worker per live provider until the queue is empty; a worker whose
    // provider fails puts its piece back and stops. Rounds end when every piece is done or
    // no provider is left (at most one round per provider).
    while pending() && !live.is_empty() {
        let workers = live.iter().map(|&p| {
            let (queue, sink, counted, send) = (&queue, &sink, &counted, &send);
            let (delivered, unreachable) = (&delivered, &unreachable);
            async move {
                let conn = match connect(net, p).await {
                    Ok(c) => c,
                    Err(e) => {
                        unreachable.lock().expect("not poisoned").push(p);
                        return Err((p, e));
                    }
                };
                // Two requests in flight per provider, so that its link never idles
                // between pieces; a lane that fails stops its sibling too.
                let failed = std::sync::atomic::AtomicBool::new(false);
                let lane = || async {
                    let mut any = false;
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(any);
                        }
                        let Some(i) = queue.lock().expect("not poisoned").pop_front() else {
                            return Ok(any);
                        };
                        let start = i as u64 * piece;
                        let end = (start + piece).min(size);
                        let got = stream_range(&conn, id, start, Some(end), sink, counted).await;
                        if let Err(e) = got.and_then(|()| send(Msg::Done(i))) {
                            queue.lock().expect("not poisoned").push_back(i);
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        any = true;
                    }
                };
                let lanes = n0_future::join_all((0..LANES).map(|_| lane())).await;
                let any = lanes.iter().any(|r| matches!(r, Ok(true)));
                let result = match lanes.into_iter().find_map(|r| r.err()) {
                    Some(e) => Err((p, e)),
                    None => Ok(()),
                };
                conn.close(VarInt::from_u32(0), b"done");
                if any {
                    delivered
                        .lock()
                        .expect("not poisoned")
                        .push(peer_name(p.as_bytes()));
                }
                result
            }
        });
        let results = n0_future::join_all(workers).await;
        for r in results {
            if let Err((p, e)) = r {
                live.retain(|q| *q != p);
                last_error = Some(match e {
                    Error::Net(msg) => Error::Peer {
                        peer: peer_name(p.as_bytes()),
                        msg,
                    },
                    e => e,
                });
            }
        }
    }
    drop(tx);
    // A write error (a full disk) explains a stopped transfer better than the transfer.
    join_writer(writer, path).await?;
    if pending() {
        return Err(last_error.unwrap_or_else(|| Error::NoProvider("no provider".into())));
    }
    drop(file);
    // Every piece received here was verified by iroh-blobs against `id`'s BLAKE3 tree. Pieces
    // an earlier process marked done are not proven by that (a crash may keep the mark and
    // lose the bytes), so a resumed file is hashed whole once more.
    if resumed {
        check_whole(path, id)?;
    }
    let _ = std::fs::remove_file(&map);
    Ok(PiecesReport {
        bytes: received.load(Ordering::Relaxed),
        peers: delivered.into_inner().unwrap_or_default(),
        unreachable: unreachable.into_inner().unwrap_or_default(),
    })
}
