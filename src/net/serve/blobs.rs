//! The blob store that `lode serve` and `lode push` answer iroh-blobs requests from: lode's
//! own object files, read in place. Nothing is imported or scanned at start-up and nothing is
//! held per object: a request opens the object's file. A blob larger than one 16 KiB chunk
//! group also needs its BLAKE3 outboard (the inner hashes of its tree); it is computed on the
//! first request for that blob, checked against the id, and kept in `.lode/outboards/` of the
//! repository holding the object (written through a temp file, then renamed). Smaller blobs —
//! most objects of a dataset of many files — need none.
//!
//! iroh-blobs has no public trait for a custom store, but its `Store` is a client of a message
//! protocol (`api::proto::Request`) that every store answers; this module answers the messages
//! the provider sends (`ExportBao`, `Observe`, `BlobStatus`, `WaitIdle`, `Shutdown`) and
//! refuses the rest (imports, tags, deletions: this store is read-only), as iroh-blobs' own
//! `readonly_mem` store does.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bao_tree::io::mixed::{traverse_ranges_validated, EncodedItem, Sender};
use bao_tree::io::outboard::{PreOrderMemOutboard, PreOrderOutboard};
use bao_tree::io::sync::CreateOutboard;
use bao_tree::{BaoTree, ChunkRanges};
use iroh_blobs::api::blobs::Bitfield;
use iroh_blobs::api::proto::{
    self, BlobStatus, Command, ExportBaoMsg, ExportBaoRequest, ObserveMsg, ObserveRequest,
};
use iroh_blobs::api::Store as ApiStore;
use iroh_blobs::store::IROH_BLOCK_SIZE;
use iroh_blobs::Hash;
use n0_future::StreamExt;
use ref_cast::RefCast;

use crate::id::ObjectId;
use crate::store::Store;

/// Where objects are looked up: each served repository's object store and the directory its
/// outboards are kept in.
#[derive(Clone, Debug)]
pub struct Source {
    pub objects: Store,
    pub outboards: PathBuf,
}

impl Source {
    /// The object store of `repo` and its `.lode/outboards`.
    pub fn of(repo: &crate::repo::Repo) -> Source {
        Source {
            objects: repo.store().clone(),
            outboards: repo.outboards_dir(),
        }
    }
}

/// A read-only iroh-blobs store over lode object stores (see the module docs).
#[derive(Clone, Debug)]
pub struct ObjectBlobs {
    api: ApiStore,
}

impl ObjectBlobs {
    /// Starts the store's task on the current runtime; it ends when every handle is dropped
    /// or on `shutdown`.
    pub fn spawn(sources: Vec<Source>) -> ObjectBlobs {
        Self::spawn_over(sources, None)
    }

    /// [`ObjectBlobs::spawn`] in front of another store `first`: what `first` holds (whole or
    /// in part) is answered from it, the rest from `sources`. A download's swarm session
    /// serves this way: big objects (and the verified parts of those still arriving) from its
    /// iroh-blobs store, small objects from the repository's object files they landed in.
    pub fn spawn_over(sources: Vec<Source>, first: Option<ApiStore>) -> ObjectBlobs {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let inner = Arc::new(Inner {
            sources,
            first,
            computing: Mutex::new(HashMap::new()),
        });
        tokio::spawn(run(inner, rx));
        let client: irpc::Client<proto::Request> = irpc::LocalSender::from(tx).into();
        ObjectBlobs {
            api: ApiStore::ref_cast(&client).clone(),
        }
    }

    /// The iroh-blobs API handle (what `BlobsProtocol` serves from).
    pub fn api(&self) -> &ApiStore {
        &self.api
    }
}

struct Inner {
    sources: Vec<Source>,
    /// A store asked before the sources (see [`ObjectBlobs::spawn_over`]).
    first: Option<ApiStore>,
    /// One outboard computation per blob at a time: concurrent first requests wait for it.
    computing: Mutex<HashMap<Hash, Arc<tokio::sync::Mutex<()>>>>,
}

/// An object found: its bytes, size and the source it came from.
struct Found {
    file: Data,
    size: u64,
    source: usize,
}

/// Where an object's bytes are: its file, or (a file held in chunks, asked for whole) its
/// chunks in order.
#[derive(Clone)]
enum Data {
    File(Arc<File>),
    /// An object in a pack: the pack, the object's offset in it and its length.
    Slice(Arc<File>, u64, u64),
    Chunks(Arc<crate::store::chunks::ChunkedBytes>),
}

impl Data {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        match self {
            Data::File(f) => std::os::unix::fs::FileExt::read_at(&**f, buf, at),
            Data::Slice(f, offset, len) => {
                let want = len.saturating_sub(at).min(buf.len() as u64) as usize;
                std::os::unix::fs::FileExt::read_at(&**f, &mut buf[..want], offset + at)
            }
            Data::Chunks(c) => c.read_at(buf, at),
        }
    }
}

impl bao_tree::io::mixed::ReadBytesAt for Data {
    fn read_bytes_at(&self, offset: u64, size: usize) -> io::Result<bytes::Bytes> {
        let mut buf = vec![0u8; size];
        let mut got = 0;
        while got < size {
            let n = self.read_at(&mut buf[got..], offset + got as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += n;
        }
        Ok(buf.into())
    }
}

impl Inner {
    /// The store in front of the sources, when it holds (some of) `hash`.
    async fn first_holding(&self, hash: Hash) -> Option<&ApiStore> {
        let first = self.first.as_ref()?;
        match first.status(hash).await {
            Ok(BlobStatus::NotFound) | Err(_) => None,
            Ok(_) => Some(first),
        }
    }

    fn find(&self, hash: &Hash) -> Option<Found> {
        let id = ObjectId(*hash.as_bytes());
        self.sources.iter().enumerate().find_map(|(i, s)| {
            // The packs first (held in memory), as `Store::reader` does: most objects of
            // a store of many small files are there, and a path that is not there is a
            // failed `open` (a path walk and a negative dentry) per object served.
            if let Some(loc) = s.objects.packed(&id) {
                return Some(Found {
                    size: u64::from(loc.len),
                    file: Data::Slice(loc.file, loc.offset, u64::from(loc.len)),
                    source: i,
                });
            }
            if let Ok(file) = File::open(s.objects.path(&id)) {
                let size = file.metadata().ok()?.len();
                return Some(Found {
                    file: Data::File(Arc::new(file)),
                    size,
                    source: i,
                });
            }
            let chunks = s.objects.chunked_bytes(&id).ok()??;
            Some(Found {
                size: chunks.len(),
                file: Data::Chunks(Arc::new(chunks)),
                source: i,
            })
        })
    }

    /// The size of an object, from the packs, its file's metadata (nothing is opened), or
    /// its chunk map for a file held in chunks.
    fn size(&self, hash: &Hash) -> Option<u64> {
        let id = ObjectId(*hash.as_bytes());
        self.sources
            .iter()
            .find_map(|s| s.objects.size_of(&id).ok())
    }

    /// The outboard of a blob larger than one chunk group: read from the cache, or computed
    /// from the object (and checked against its id) and cached.
    async fn outboard(&self, hash: Hash, found: &Found) -> io::Result<File> {
        let dir = &self.sources[found.source].outboards;
        let path = dir.join(hash.to_hex());
        if let Ok(f) = File::open(&path) {
            return Ok(f);
        }
        let turn = {
            let mut map = self.computing.lock().expect("not poisoned");
            map.entry(hash).or_default().clone()
        };
        let _turn = turn.lock().await;
        if let Ok(f) = File::open(&path) {
            return Ok(f);
        }
        let data = found.file.clone();
        let size = found.size;
        let dir = dir.clone();
        let tmp_dir = self.sources[found.source].objects.tmp_dir().to_path_buf();
        let made = tokio::task::spawn_blocking(move || -> io::Result<File> {
            let ob = PreOrderOutboard::<Vec<u8>>::create_sized(
                io::BufReader::with_capacity(1 << 20, ReadFrom(&data, 0)),
                size,
                IROH_BLOCK_SIZE,
            )?;
            if ob.root.as_bytes() != hash.as_bytes() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("object {hash} is damaged (its bytes hash to {})", ob.root),
                ));
            }
            std::fs::create_dir_all(&dir)?;
            let mut tmp = tempfile::Builder::new()
                .prefix("outboard-")
                .tempfile_in(&tmp_dir)?;
            tmp.write_all(&ob.data)?;
            let path = dir.join(hash.to_hex());
            tmp.persist(&path).map_err(|e| e.error)?;
            File::open(&path)
        })
        .await
        .map_err(io::Error::other)?;
        self.computing.lock().expect("not poisoned").remove(&hash);
        made
    }
}

/// Reads an object from an offset on, without moving a shared cursor.
struct ReadFrom<'a>(&'a Data, u64);

impl io::Read for ReadFrom<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read_at(buf, self.1)?;
        self.1 += n as u64;
        Ok(n)
    }
}

async fn run(inner: Arc<Inner>, mut rx: tokio::sync::mpsc::Receiver<Command>) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::ExportBao(ExportBaoMsg {
                inner: ExportBaoRequest { hash, ranges, .. },
                tx,
                ..
            }) => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    if let Some(first) = inner.first_holding(hash).await {
                        let mut items = std::pin::pin!(first.export_bao(hash, ranges).stream());
                        while let Some(item) = items.next().await {
                            if tx.send(item).await.is_err() {
                                break;
                            }
                        }
                        return;
                    }
                    export_bao(&inner, hash, ranges, tx).await
                });
            }
            Command::Observe(ObserveMsg {
                inner: ObserveRequest { hash },
                tx,
                ..
            }) => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    if let Some(first) = inner.first_holding(hash).await {
                        // Its bitfield and every range it adds, until it holds the blob whole.
                        if let Ok(fields) = first.observe(hash).stream().await {
                            let mut fields = std::pin::pin!(fields);
                            while let Some(field) = fields.next().await {
                                if tx.send(field).await.is_err() {
                                    return;
                                }
                            }
                        }
                        return;
                    }
                    let found = inner.size(&hash);
                    let field = found.map_or_else(Bitfield::empty, Bitfield::complete);
                    if tx.send(field).await.is_ok() {
                        // Nothing changes here, but the observation stays open until the
                        // observer leaves: iroh-blobs' provider resets a stream whose
                        // observation ends, and the reset can overtake the bitfield.
                        tx.closed().await;
                    }
                });
            }
            Command::BlobStatus(cmd) => {
                let inner = inner.clone();
                tokio::spawn(async move {
                    let hash = cmd.inner.hash;
                    let status = match inner.first_holding(hash).await {
                        Some(first) => first.status(hash).await.ok(),
                        None => None,
                    };
                    let status = status.unwrap_or_else(|| match inner.size(&hash) {
                        Some(size) => BlobStatus::Complete { size },
                        None => BlobStatus::NotFound,
                    });
                    cmd.tx.send(status).await.ok();
                });
            }
            Command::WaitIdle(cmd) => {
                cmd.tx.send(()).await.ok();
            }
            Command::SyncDb(cmd) => {
                cmd.tx.send(Ok(())).await.ok();
            }
            Command::ClearProtected(cmd) => {
                cmd.tx.send(Ok(())).await.ok();
            }
            Command::ListTags(cmd) => {
                cmd.tx.send(Vec::new()).await.ok();
            }
            Command::ListTempTags(cmd) => {
                cmd.tx.send(Vec::new()).await.ok();
            }
            Command::Shutdown(cmd) => {
                cmd.tx.send(()).await.ok();
                break;
            }
            Command::ImportBao(cmd) => {
                cmd.tx.send(Err(read_only().into())).await.ok();
            }
            Command::ImportBytes(cmd) => {
                cmd.tx.send(read_only().into()).await.ok();
            }
            Command::ImportByteStream(cmd) => {
                cmd.tx.send(read_only().into()).await.ok();
            }
            Command::ImportPath(cmd) => {
                cmd.tx.send(read_only().into()).await.ok();
            }
            Command::ExportPath(cmd) => {
                let e: iroh_blobs::api::Error = read_only().into();
                cmd.tx.send(e.into()).await.ok();
            }
            Command::ExportRanges(cmd) => {
                cmd.tx
                    .send(iroh_blobs::api::proto::ExportRangesItem::Error(
                        read_only().into(),
                    ))
                    .await
                    .ok();
            }
            Command::SetTag(cmd) => {
                cmd.tx.send(Err(read_only().into())).await.ok();
            }
            Command::CreateTag(cmd) => {
                cmd.tx.send(Err(read_only().into())).await.ok();
            }
            Command::RenameTag(cmd) => {
                cmd.tx.send(Err(read_only().into())).await.ok();
            }
            Command::DeleteTags(cmd) => {
                cmd.tx.send(Err(read_only().into())).await.ok();
            }
            Command::DeleteBlobs(cmd) => {
                cmd.tx.send(Err(read_only().into())).await.ok();
            }
            Command::CreateTempTag(cmd) => {
                cmd.tx
                    .send(iroh_blobs::api::TempTag::new(cmd.inner.value, None))
                    .await
                    .ok();
            }
            Command::ListBlobs(_) | Command::Batch(_) => {}
        }
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "lode's serving store is read-only",
    )
}

/// Sends the verified encoding of `ranges` of one blob: its bytes checked against the id (a
/// damaged object file fails the request instead of reaching the peer).
async fn export_bao(
    inner: &Inner,
    hash: Hash,
    ranges: ChunkRanges,
    mut tx: irpc::channel::mpsc::Sender<EncodedItem>,
) {
    let Some(found) = inner.find(&hash) else {
        let e = io::Error::new(io::ErrorKind::NotFound, format!("no object {hash} here"));
        tx.send(EncodedItem::Error(bao_tree::io::EncodeError::Io(e)))
            .await
            .ok();
        return;
    };
    let tree = BaoTree::new(found.size, IROH_BLOCK_SIZE);
    let sender = Send(&mut tx);
    let result = if tree.outboard_size() == 0 {
        let ob = PreOrderMemOutboard {
            root: blake3::Hash::from_bytes(*hash.as_bytes()),
            tree,
            data: Vec::new(),
        };
        traverse(found.file, ob, &ranges, sender).await
    } else {
        match inner.outboard(hash, &found).await {
            Ok(file) => {
                let ob = PreOrderOutboard {
                    root: blake3::Hash::from_bytes(*hash.as_bytes()),
                    tree,
                    data: file,
                };
                traverse(found.file, ob, &ranges, sender).await
            }
            Err(e) => Err(e),
        }
    };
    if let Err(e) = result {
        tx.send(EncodedItem::Error(bao_tree::io::EncodeError::Io(e)))
            .await
            .ok();
    }
}

async fn traverse(
    data: Data,
    outboard: impl bao_tree::io::sync::Outboard,
    ranges: &ChunkRanges,
    mut sender: Send<'_>,
) -> io::Result<()> {
    traverse_ranges_validated(data, outboard, ranges, &mut sender)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the peer stopped reading"))
}

/// The provider's channel as a bao-tree sender.
struct Send<'a>(&'a mut irpc::channel::mpsc::Sender<EncodedItem>);

impl Sender for Send<'_> {
    type Error = irpc::channel::SendError;
    async fn send(&mut self, item: EncodedItem) -> std::result::Result<(), Self::Error> {
        self.0.send(item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_in_front_answers_what_it_holds_and_the_object_files_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Store::new(dir.path().join("objects"), dir.path().join("tmp"));
        objects.create().unwrap();
        // A small object landed in the object store; a big one (several chunk groups, so
        // with an outboard) held by the store in front.
        let small = b"a small object, landed in the object store".to_vec();
        let small_id = ObjectId::of(&small);
        objects.put_many(&[(small_id, &small[..])]).unwrap();
        let front = iroh_blobs::store::mem::MemStore::new();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let big_hash = front.add_bytes(big.clone()).await.unwrap().hash;
        let source = Source {
            objects,
            outboards: dir.path().join("outboards"),
        };
        let blobs = ObjectBlobs::spawn_over(vec![source], Some((*front).clone()));
        let api = blobs.api();
        let small_hash = Hash::from_bytes(small_id.0);
        assert_eq!(api.get_bytes(small_hash).await.unwrap(), small);
        assert_eq!(api.get_bytes(big_hash).await.unwrap(), big);
        assert!(matches!(
            api.status(big_hash).await.unwrap(),
            BlobStatus::Complete { size } if size == big.len() as u64
        ));
        let unknown = Hash::new(b"held by neither");
        assert!(matches!(
            api.status(unknown).await.unwrap(),
            BlobStatus::NotFound
        ));
        assert!(api.get_bytes(unknown).await.is_err());
        // What the store in front holds never needed an outboard of the object files'.
        assert!(!dir.path().join("outboards").exists());
    }
}
