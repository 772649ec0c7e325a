//! Files stored in content-defined chunks (docs/ARCHITECTURE.md, "Versions as diffs").
//!
//! A file of at least [`CHUNKED_MIN`] bytes added by copy is cut by FastCDC (v2020) into
//! chunks of [`CHUNK_MIN`]–[`CHUNK_MAX`] bytes, [`CHUNK_AVG`] on average. Each chunk is an
//! ordinary object named by its BLAKE3 hash, so the store holds it once whatever file or
//! version uses it. The file's [`ChunkMap`] (its whole-file id, size, and chunks in order) is
//! an object too. The file itself keeps its id, the BLAKE3 hash of its whole bytes: the store
//! records that it holds the file in chunks with a *link*, `objects/ab/<rest>.chunks`, a
//! 32-byte file naming the map (object listings skip it: it is not named like an object).
//!
//! Invariants:
//! - A link is written only once the map and every chunk are in the store and the chunks,
//!   in order, hash to the file's id (checked at `add` while the file is read, and by
//!   [`Store::put_chunked`] for what a peer sent). So `has(file)` holds for a chunked file
//!   exactly when it could be assembled.
//! - Reads that make a chunked file visible ([`Store::copy_out`], [`Store::read_verified`])
//!   hash the assembled bytes and refuse a mismatch, as for a file stored whole.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::{ChunkMap, MAX_CHUNK_MAP_SIZE};

use super::cut::{Piece, Pool};
use super::{create_whole, Imported, Stat, Store, Whole, CHUNK};

/// Files of at least this many bytes are stored in chunks (smaller ones whole: their chunks
/// would be few, and each object costs a file).
pub const CHUNKED_MIN: u64 = 4 << 20;
/// FastCDC's bounds. 256 KiB on average: a 1 MiB edit stores and moves about 1.5 MiB (the
/// chunks it touches and one on each side); 1 GiB is about 4,000 chunks, each one file.
/// docs/PERFORMANCE.md ("Versions as diffs") gives the measurements behind the choice.
pub const CHUNK_MIN: u32 = 64 << 10;
pub const CHUNK_AVG: u32 = 256 << 10;
pub const CHUNK_MAX: u32 = 1 << 20;

/// The suffix of a link file beside the objects.
const LINK_SUFFIX: &str = ".chunks";

impl Store {
    /// Opens an object for reading: a file stored whole, or the chunks of one stored in
    /// chunks, in order. Not hashed: a caller that makes the bytes visible hashes them.
    pub fn reader(&self, id: &ObjectId) -> Result<ObjectReader> {
        if let Some(r) = self.packed_reader(id) {
            return Ok(ObjectReader::Packed(r));
        }
        match self.open(id) {
            Err(Error::ObjectMissing { .. }) => match self.chunked(id)? {
                Some(map) => Ok(ObjectReader::Chunked(ChunkReader::new(self.clone(), map))),
                None => Err(Error::ObjectMissing {
                    id: *id,
                    path: None,
                }),
            },
            other => other.map(ObjectReader::Whole),
        }
    }

    /// The size of object `id`, stored in a pack, whole or in chunks (the packs first, as
    /// [`Store::reader`]: a lookup in memory, where the path of a packed object is a
    /// failed `stat`).
    pub fn size_of(&self, id: &ObjectId) -> Result<u64> {
        if let Some(loc) = self.packed(id) {
            return Ok(u64::from(loc.len));
        }
        match fs::metadata(self.path(id)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.chunked(id)? {
                Some(map) => Ok(map.size),
                None => Err(Error::ObjectMissing {
                    id: *id,
                    path: None,
                }),
            },
            Err(e) => Err(Error::io("cannot read object", self.path(id), e)),
        }
    }

    /// Copies file `id`, held in chunks, into `dest` while hashing it (`ObjectCorrupt` on a
    /// mismatch, `ObjectMissing` when the store does not hold it in chunks either).
    pub(super) fn copy_out_chunked(&self, id: &ObjectId, dest: &File) -> Result<u64> {
        match self.chunked(id)? {
            Some(map) => copy_hashed(ChunkReader::new(self.clone(), map), id, dest),
            None => Err(Error::ObjectMissing {
                id: *id,
                path: None,
            }),
        }
    }

    /// Where this store writes the link of file `id`.
    pub(super) fn own_link_path(&self, id: &ObjectId) -> PathBuf {
        let mut p = self.own_path(id).into_os_string();
        p.push(LINK_SUFFIX);
        PathBuf::from(p)
    }

    /// The name of a chunk link in its fan-out directory, given the rest of its file's
    /// hex id after the directory's two digits.
    pub(super) fn link_name(rest: &str) -> String {
        format!("{rest}{LINK_SUFFIX}")
    }

    /// The link of file `id` (for a quarantine: in it, else in the store behind it).
    fn link_path(&self, id: &ObjectId) -> PathBuf {
        let own = self.own_link_path(id);
        match &self.under {
            Some((under, _)) if fs::symlink_metadata(&own).is_err() => {
                let mut p = super::object_path(under, id).into_os_string();
                p.push(LINK_SUFFIX);
                PathBuf::from(p)
            }
            _ => own,
        }
    }

    /// Whether the store holds file `id` in chunks (its link exists).
    pub(super) fn has_chunked(&self, id: &ObjectId) -> bool {
        fs::symlink_metadata(self.link_path(id)).is_ok()
    }

    /// The chunk map of file `id` (`size` bytes) when the store holds it in chunks; `None`
    /// for a file stored whole, too small to be chunked, or absent.
    pub fn chunk_map_of(&self, id: &ObjectId, size: u64) -> Result<Option<ObjectId>> {
        if size < CHUNKED_MIN {
            return Ok(None);
        }
        let path = self.link_path(id);
        match fs::read(&path) {
            Ok(b) => match <[u8; 32]>::try_from(&b[..]) {
                Ok(map) => Ok(Some(ObjectId(map))),
                Err(_) => Err(Error::BadObject {
                    id: *id,
                    what: "chunk link",
                    msg: format!("{} holds {} bytes, not 32", path.display(), b.len()),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", path, e)),
        }
    }

    /// Reads and checks chunk map `map`.
    pub fn read_chunk_map(&self, map: &ObjectId) -> Result<ChunkMap> {
        let bytes = self.read_verified(map, MAX_CHUNK_MAP_SIZE)?;
        ChunkMap::decode(&bytes).map_err(|e| Error::BadObject {
            id: *map,
            what: "chunk map",
            msg: e.to_string(),
        })
    }

    /// The chunk map of file `id` if the store holds it in chunks (read and checked).
    pub(super) fn chunked(&self, id: &ObjectId) -> Result<Option<ChunkMap>> {
        let Some(map_id) = self.chunk_map_of(id, u64::MAX)? else {
            return Ok(None);
        };
        let map = self.read_chunk_map(&map_id)?;
        if map.file != *id {
            return Err(Error::BadObject {
                id: map_id,
                what: "chunk map",
                msg: format!("it is the map of {}, not of {id}", map.file),
            });
        }
        Ok(Some(map))
    }

    /// Records that the store holds file `map.file` in the chunks of map `map_id`, which
    /// must all be here: reads them in order, checks that they hash to the file's id, then
    /// writes the link. On a mismatch nothing is written and the error says so
    /// (`ObjectCorrupt` naming the file); a missing chunk is `ObjectMissing`.
    pub fn put_chunked(&self, map_id: &ObjectId) -> Result<ObjectId> {
        let map = self.read_chunk_map(map_id)?;
        if self.has(&map.file) {
            return Ok(map.file);
        }
        let corrupt = || Error::ObjectCorrupt {
            id: map.file,
            path: None,
        };
        let chunks = ChunkReader::new(self.clone(), map.clone());
        // Before a checkout, the bytes are also assembled into a temp file as they are
        // hashed: the checkout renames it into place instead of reading them a second time.
        let (n, assembled) = if self
            .prepared
            .enabled
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let tmp = self.temp()?;
            (copy_hashed(chunks, &map.file, tmp.as_file())?, Some(tmp))
        } else {
            let (got, n) = super::hash_reader(chunks).map_err(|e| reader_error(e, &map.file))?;
            if got != map.file {
                return Err(corrupt());
            }
            (n, None)
        };
        if n != map.size {
            return Err(corrupt());
        }
        self.write_link(&map.file, map_id)?;
        if let Some(tmp) = assembled {
            self.prepared
                .files
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(map.file, tmp.into_temp_path());
        }
        Ok(map.file)
    }

    /// Turns file `map.file`, stored whole (fetched whole from a peer), into the chunks of
    /// map `map_id`: each chunk is cut from the file at its offset and must hash to the id
    /// the map gives (`ObjectCorrupt` naming the file otherwise, and no link is written); then
    /// the link is written and, with `drop_whole`, the whole copy removed (a swarm session
    /// may still be serving it: it removes it when it ends, `gc` otherwise). Chunks already here are not
    /// rewritten.
    pub fn split_whole(&self, map_id: &ObjectId, drop_whole: bool) -> Result<ObjectId> {
        let map = self.read_chunk_map(map_id)?;
        let path = self.path(&map.file);
        let src = self.open(&map.file)?;
        let io_err = |e| Error::io("cannot read object", &path, e);
        if src.metadata().map_err(io_err)?.len() != map.size {
            return Err(Error::ObjectCorrupt {
                id: map.file,
                path: None,
            });
        }
        // The chunks not here, cut and checked by one thread per core. When they are most of
        // the file and the whole copy is this store's own, the copy becomes their pack (a
        // hard link: nothing is written); otherwise they are copied into a new pack.
        let todo: Vec<(u64, ObjectId, u32)> =
            map.offsets().filter(|(_, id, _)| !self.has(id)).collect();
        let new_bytes: u64 = todo.iter().map(|(_, _, n)| u64::from(*n)).sum();
        let own = self.own_path(&map.file);
        let link = own == path && new_bytes >= map.size / 4 * 3;
        let pack = std::sync::Mutex::new(self.pack_writer());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut buf = Vec::new();
                    let fail = |e: Error| {
                        let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                        f.get_or_insert(e);
                    };
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(at, id, len)) = todo.get(i) else {
                            return;
                        };
                        if failed.lock().map_or(true, |f| f.is_some()) {
                            return;
                        }
                        buf.resize(len as usize, 0);
                        if let Err(e) =
                            std::os::unix::fs::FileExt::read_exact_at(&src, &mut buf, at)
                        {
                            return fail(io_err(e));
                        }
                        if ObjectId::of(&buf) != id {
                            return fail(Error::ObjectCorrupt {
                                id: map.file,
                                path: None,
                            });
                        }
                        if link {
                            continue;
                        }
                        let added = pack.lock().unwrap_or_else(|p| p.into_inner()).add(id, &buf);
                        if let Err(e) = added {
                            return fail(e);
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        if link {
            self.link_pack(&own, todo.iter().map(|&(at, id, n)| (id, at, n)).collect())?;
        } else {
            pack.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .finish()?;
        }
        self.write_link(&map.file, map_id)?;
        if !drop_whole {
            return Ok(map.file);
        }
        // The chunks must be durable before the only whole copy goes.
        self.sync()?;
        if own == path {
            fs::remove_file(&own).map_err(|e| Error::io("cannot remove object", &own, e))?;
        }
        Ok(map.file)
    }

    fn write_link(&self, file: &ObjectId, map: &ObjectId) -> Result<()> {
        let dest = self.own_link_path(file);
        match create_whole(&dest, &map.0, 0o444) {
            Ok(Whole::Created(_) | Whole::Exists) => Ok(()),
            Ok(Whole::Unsupported) => {
                let mut tmp = self.temp()?;
                tmp.write_all(&map.0)
                    .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
                let _ = tmp
                    .as_file()
                    .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o444));
                tmp.persist(&dest)
                    .map_err(|e| Error::io("cannot store", &dest, e.error))?;
                Ok(())
            }
            Err(e) => Err(Error::io("cannot store", &dest, e)),
        }
    }

    /// Removes the link of file `id` (the chunks stay until `gc` finds them unused).
    fn remove_link(&self, id: &ObjectId) -> Result<()> {
        let p = self.own_link_path(id);
        fs::remove_file(&p).map_err(|e| Error::io("cannot remove", p, e))
    }

    /// How many files held in chunks use each chunk (for [`Store::remove_chunked`]).
    pub fn chunk_refs(&self) -> Result<std::collections::HashMap<ObjectId, u32>> {
        let mut refs = std::collections::HashMap::new();
        for (_, map) in self.list_chunked()? {
            if let Ok(m) = self.read_chunk_map(&map) {
                for (c, _) in m.chunks {
                    *refs.entry(c).or_insert(0) += 1;
                }
            }
        }
        Ok(refs)
    }

    /// Removes file `id`, held in chunks, and the bytes only it used: its link, its chunk
    /// map, and each chunk no other file held in chunks uses (`refs`, from
    /// [`Store::chunk_refs`], is updated) and `keep` does not claim (an object that is also
    /// a file of its own). Returns the bytes freed; `None` when the file is not held in
    /// chunks.
    pub fn remove_chunked(
        &self,
        id: &ObjectId,
        refs: &mut std::collections::HashMap<ObjectId, u32>,
        keep: &dyn Fn(&ObjectId) -> bool,
    ) -> Result<Option<u64>> {
        let Some(map_id) = self.chunk_map_of(id, u64::MAX)? else {
            return Ok(None);
        };
        let map = self.read_chunk_map(&map_id).ok();
        self.remove_link(id)?;
        let mut gone = Vec::new();
        if !keep(&map_id) {
            gone.push(map_id);
        }
        for (c, _) in map.map(|m| m.chunks).unwrap_or_default() {
            let n = refs.entry(c).or_insert(1);
            *n = n.saturating_sub(1);
            if *n == 0 && !keep(&c) {
                gone.push(c);
            }
        }
        // Only what this store holds itself (whole or in its packs) is removed.
        Ok(Some(self.remove_objects(&gone)?))
    }

    /// Removes file `id`, stored whole or in chunks (then as [`Store::remove_chunked`];
    /// `refs` is filled on first use). Returns the bytes freed (0 when it was not here).
    pub fn remove_file(
        &self,
        id: &ObjectId,
        refs: &mut Option<std::collections::HashMap<ObjectId, u32>>,
        keep: &dyn Fn(&ObjectId) -> bool,
    ) -> Result<u64> {
        let p = self.own_path(id);
        if let Ok(m) = fs::symlink_metadata(&p) {
            fs::remove_file(&p).map_err(|e| Error::io("cannot remove object", &p, e))?;
            return Ok(m.len());
        }
        if !self.has_chunked(id) {
            // An object in a pack (a small file whose bytes are also a chunk's), or nothing.
            return self.remove_objects(&[*id]);
        }
        if refs.is_none() {
            *refs = Some(self.chunk_refs()?);
        }
        let refs = refs.as_mut().expect("filled above");
        Ok(self.remove_chunked(id, refs, keep)?.unwrap_or(0))
    }

    /// Lists the files this store holds in chunks: (file id, map id).
    pub fn list_chunked(&self) -> Result<Vec<(ObjectId, ObjectId)>> {
        let mut out = Vec::new();
        self.each_entry(|name, entry| {
            let Some(id) = name
                .strip_suffix(LINK_SUFFIX)
                .and_then(|n| n.parse::<ObjectId>().ok())
            else {
                return;
            };
            if let Ok(b) = fs::read(entry.path()) {
                if let Ok(map) = <[u8; 32]>::try_from(&b[..]) {
                    out.push((id, ObjectId(map)));
                }
            }
        })?;
        Ok(out)
    }

    /// Cuts the regular file `src` (opened from `path`, `before` its `lstat`) into chunks and
    /// stores those not yet here, then its chunk map and link. One read pass: the whole-file
    /// hash is computed on a second thread from the same buffers. `check_after` fails when the
    /// file changed while it was read.
    pub(super) fn import_chunked(
        &self,
        path: &Path,
        src: &File,
        before: &Stat,
        check_after: &dyn Fn(&File) -> Result<Stat>,
    ) -> Result<Option<Imported>> {
        if before.size < CHUNKED_MIN {
            return Ok(None);
        }
        let io_err = |e| Error::io("cannot read", path, e);
        let chunker = super::cut::Cutter::new(src, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX);
        // Three stages, so the cutting (reads and the gear hash) never waits for the disk:
        // this thread cuts, a second hashes the whole file, a third hashes each chunk and
        // (when the file shares chunks with the store) writes the new ones into a pack.
        let mut chunker = chunker.peekable();
        // A file whose first chunk the store lacks is taken to be new: the kernel copies it
        // whole into what becomes its pack (a reflink where the file system can), while
        // this thread cuts and hashes it, as a whole-file store would copy it.
        let new_file = match chunker.peek() {
            Some(Ok(c)) => !self.has(&ObjectId::of(c)),
            _ => false,
        };
        let copier = if new_file {
            Some(self.copy_on_thread(path)?)
        } else {
            None
        };
        let (tx, hasher) = hash_on_thread(8);
        let (to_store, storer) = self.store_on_thread(8, !new_file);
        let mut total = 0u64;
        let mut failed = None;
        for chunk in chunker {
            let data = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(io_err(e));
                    break;
                }
            };
            total += data.len() as u64;
            if tx.send(data.clone()).is_err() || to_store.send(data).is_err() {
                // The storer stops on its first error, which it returns below.
                break;
            }
        }
        drop(tx);
        drop(to_store);
        let file = hasher
            .join()
            .map_err(|_| Error::Other("the hashing thread panicked".into()))?;
        let stored = storer
            .join()
            .map_err(|_| Error::Other("the chunk-writing thread panicked".into()))?;
        if let Some(e) = failed {
            return Err(e);
        }
        let (chunks, mut stored) = stored?;
        let copied = match copier {
            Some(c) => Some(
                c.join()
                    .map_err(|_| Error::Other("the copying thread panicked".into()))?
                    .map_err(io_err)?,
            ),
            None => None,
        };
        if total != before.size || copied.as_ref().is_some_and(|(_, n)| *n != total) {
            return Err(Error::FileChanged(path.to_path_buf()));
        }
        let stat = check_after(src)?;
        if let Some((copy, _)) = copied {
            stored = self.pack_copy(copy, src, &chunks, path)?;
        }
        if self.has(&file) {
            return Ok(Some(Imported {
                id: file,
                stat,
                stored,
            }));
        }
        let map = ChunkMap {
            file,
            size: total,
            chunks,
        };
        let map_id = self.put_bytes(&map.encode())?;
        self.write_link(&file, &map_id)?;
        Ok(Some(Imported {
            id: file,
            stat,
            stored,
        }))
    }

    /// A thread that hashes, in order, the chunks sent to it (at most `queue` waiting) and
    /// writes those the store lacks into one new pack; returns their ids and lengths, in
    /// order, and how many bytes were new. It stops at its first error (the sender then
    /// fails) and returns it; the pack is named only once every chunk is in.
    #[allow(clippy::type_complexity)]
    fn store_on_thread(
        &self,
        queue: usize,
        write: bool,
    ) -> (
        std::sync::mpsc::SyncSender<Piece>,
        std::thread::JoinHandle<Result<(Vec<(ObjectId, u32)>, u64)>>,
    ) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(queue);
        let mut pack = self.pack_writer();
        let storer = std::thread::spawn(move || {
            let mut chunks = Vec::new();
            let mut stored = 0u64;
            for data in rx {
                let id = ObjectId::of(&data);
                if write && pack.add(id, &data)? {
                    stored += data.len() as u64;
                }
                chunks.push((id, data.len() as u32));
            }
            // One pack for the new chunks of this file: one file created, not thousands.
            pack.finish()?;
            Ok((chunks, stored))
        });
        (tx, storer)
    }
}

impl Store {
    /// A thread copying the file at `path` into a temp file of the store (a reflink where
    /// the file system can, else an in-kernel copy); returns it and the bytes copied.
    #[allow(clippy::type_complexity)]
    fn copy_on_thread(
        &self,
        path: &Path,
    ) -> Result<std::thread::JoinHandle<io::Result<(tempfile::NamedTempFile, u64)>>> {
        let tmp = self.temp()?;
        let reader = File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
        Ok(std::thread::spawn(move || {
            let n = if rustix::fs::ioctl_ficlone(tmp.as_file(), &reader).is_ok() {
                tmp.as_file().metadata()?.len()
            } else {
                io::copy(&mut &reader, &mut tmp.as_file())?
            };
            Ok((tmp, n))
        }))
    }

    /// Stores the chunks (`chunks`, in order) of the file `src` that the store lacks, given
    /// `copy`, a whole copy of the file: when they are most of it, the copy becomes their
    /// pack (the index names only them; the rest are dead bytes), else they are read from
    /// `src` again, each checked against its id, into a new pack. Returns the new bytes.
    fn pack_copy(
        &self,
        copy: tempfile::NamedTempFile,
        src: &File,
        chunks: &[(ObjectId, u32)],
        path: &Path,
    ) -> Result<u64> {
        let mut seen = std::collections::HashSet::new();
        let (mut at, mut new_bytes, mut entries) = (0u64, 0u64, Vec::new());
        for (id, len) in chunks {
            if seen.insert(*id) && !self.has(id) {
                entries.push((*id, at, *len));
                new_bytes += u64::from(*len);
            }
            at += u64::from(*len);
        }
        if entries.is_empty() {
            return Ok(0);
        }
        if new_bytes >= at / 4 * 3 {
            self.pack_from_temp(copy, entries)?;
            return Ok(new_bytes);
        }
        drop(copy);
        let mut pack = self.pack_writer();
        let mut buf = Vec::new();
        for (id, at, len) in entries {
            buf.resize(len as usize, 0);
            std::os::unix::fs::FileExt::read_exact_at(src, &mut buf, at)
                .map_err(|e| Error::io("cannot read", path, e))?;
            if ObjectId::of(&buf) != id {
                return Err(Error::FileChanged(path.to_path_buf()));
            }
            pack.add(id, &buf)?;
        }
        pack.finish()?;
        Ok(new_bytes)
    }
}

/// A file held in chunks, read at any offset (the serving store sends such a file whole to
/// a peer that holds none of its chunks).
pub struct ChunkedBytes {
    store: Store,
    map: ChunkMap,
    starts: Vec<u64>,
    /// The chunk read last (reads come in order, 16 KiB at a time): its index, the file
    /// holding it and its offset there (0 for a chunk stored whole, else in a pack).
    last: std::sync::Mutex<Option<(usize, std::sync::Arc<File>, u64)>>,
}

impl ChunkedBytes {
    fn new(store: Store, map: ChunkMap) -> ChunkedBytes {
        ChunkedBytes {
            starts: map.offsets().map(|(at, _, _)| at).collect(),
            store,
            map,
            last: std::sync::Mutex::new(None),
        }
    }

    /// The file's size.
    pub fn len(&self) -> u64 {
        self.map.size
    }

    /// Whether the file is empty (never, for a chunked file).
    pub fn is_empty(&self) -> bool {
        self.map.size == 0
    }

    /// Reads from offset `at` into `buf`, within one chunk; 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        if at >= self.map.size || buf.is_empty() {
            return Ok(0);
        }
        let i = self.starts.partition_point(|s| *s <= at) - 1;
        let (id, len) = self.map.chunks[i];
        let within = at - self.starts[i];
        let want = (u64::from(len) - within).min(buf.len() as u64) as usize;
        let (f, base) = {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            match &*last {
                Some((j, f, base)) if *j == i => (f.clone(), *base),
                _ => {
                    let (f, base) = match File::open(self.store.path(&id)) {
                        Ok(f) => (std::sync::Arc::new(f), 0),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            match self.store.packed(&id) {
                                Some(loc) if loc.len == len => (loc.file, loc.offset),
                                _ => return Err(e),
                            }
                        }
                        Err(e) => return Err(e),
                    };
                    *last = Some((i, f.clone(), base));
                    (f, base)
                }
            }
        };
        std::os::unix::fs::FileExt::read_at(&*f, &mut buf[..want], base + within)
    }
}

impl Store {
    /// File `id` as [`ChunkedBytes`] when the store holds it in chunks.
    pub fn chunked_bytes(&self, id: &ObjectId) -> Result<Option<ChunkedBytes>> {
        Ok(self
            .chunked(id)?
            .map(|map| ChunkedBytes::new(self.clone(), map)))
    }
}

/// An object open for reading ([`Store::reader`]).
pub enum ObjectReader {
    Whole(File),
    Packed(super::pack::PackSlice),
    Chunked(ChunkReader),
}

impl ObjectReader {
    /// The bytes left to read, where known without a system call (a packed object's).
    pub fn known_len(&self) -> Option<u64> {
        match self {
            ObjectReader::Packed(r) => Some(r.left()),
            ObjectReader::Whole(_) | ObjectReader::Chunked(_) => None,
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ObjectReader::Whole(f) => f.read(buf),
            ObjectReader::Packed(r) => r.read(buf),
            ObjectReader::Chunked(r) => r.read(buf),
        }
    }
}

impl io::Seek for ObjectReader {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        match self {
            ObjectReader::Whole(f) => f.seek(to),
            ObjectReader::Packed(r) => r.seek(to),
            ObjectReader::Chunked(r) => r.seek(to),
        }
    }
}

/// Bytes per `write` of an assembled file. Blocks are read a MiB at a time, but written in
/// these pieces: with a MiB per `write`, a pull of a 1 GiB file spent 1.3–2.7 s of kernel
/// time copying it into the page cache whenever free memory was short (the page cache full,
/// as on any machine that has been up a while), against 0.5 s with 64 KiB writes (rsync's
/// receiver writes 256 KiB at a time; docs/PERFORMANCE.md, "Assembling a file in 64 KiB
/// writes"). Linux gives an ext4 file large page-cache folios sized by the write; finding
/// those when memory is short is the likely cost.
const WRITE_PIECE: usize = 64 << 10;

/// Writes an object's bytes (a chunked file's, a packed object's) into `dest` while hashing
/// them on a second thread; fails with `ObjectCorrupt` when they do not hash to `id`.
fn copy_hashed(mut r: impl Read, id: &ObjectId, dest: &File) -> Result<u64> {
    let (tx, hasher) = hash_on_thread(4);
    let pool = Pool::default();
    let mut n = 0u64;
    let copied = (|| -> io::Result<()> {
        let mut d = dest;
        loop {
            let (block, ended) = pool.read_block(&mut r, CHUNK)?;
            if block.is_empty() {
                return Ok(());
            }
            for piece in block.chunks(WRITE_PIECE) {
                d.write_all(piece)?;
            }
            n += block.len() as u64;
            if tx.send(block).is_err() {
                return Err(io::Error::other("the hashing thread stopped"));
            }
            if ended {
                return Ok(());
            }
        }
    })();
    drop(tx);
    let got = hasher
        .join()
        .map_err(|_| Error::Other("the hashing thread panicked".into()))?;
    copied.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::ObjectMissing {
            id: *id,
            path: None,
        },
        _ => Error::io("cannot copy the chunks of", PathBuf::from(id.to_hex()), e),
    })?;
    if got != *id {
        return Err(Error::ObjectCorrupt {
            id: *id,
            path: None,
        });
    }
    Ok(n)
}

/// A thread that hashes, in order, the pieces sent to it (at most `queue` waiting) and
/// returns the BLAKE3 id of them all once the sender is dropped.
fn hash_on_thread(
    queue: usize,
) -> (
    std::sync::mpsc::SyncSender<Piece>,
    std::thread::JoinHandle<ObjectId>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(queue);
    let hasher = std::thread::spawn(move || {
        let mut h = blake3::Hasher::new();
        for b in rx {
            h.update(&b);
        }
        ObjectId::from(h.finalize())
    });
    (tx, hasher)
}

/// Maps a read error of an assembled file: a missing chunk is `ObjectMissing` of the file.
fn reader_error(e: io::Error, file: &ObjectId) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::ObjectMissing {
            id: *file,
            path: None,
        }
    } else {
        Error::io("cannot read the chunks of", PathBuf::from(file.to_hex()), e)
    }
}

/// Reads a chunked file's bytes in order from its chunk objects (not hashed: callers that
/// make the bytes visible hash them). Seeks, for the gateway's ranges.
pub struct ChunkReader {
    bytes: ChunkedBytes,
    pos: u64,
}

impl ChunkReader {
    /// A reader at offset 0 of the file that `map` describes.
    pub fn new(store: Store, map: ChunkMap) -> ChunkReader {
        ChunkReader {
            bytes: ChunkedBytes::new(store, map),
            pos: 0,
        }
    }

    /// The file's size.
    pub fn len(&self) -> u64 {
        self.bytes.len()
    }

    /// Whether the file is empty (never, for a chunked file).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.bytes.len() || buf.is_empty() {
            return Ok(0);
        }
        let n = self.bytes.read_at(buf, self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "a chunk at offset {} is shorter than its map says",
                    self.pos
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ChunkReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let next = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.bytes.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = next.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store;
    use crate::store::ImportMode;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(6364136223846793005) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn add(s: &Store, dir: &Path, name: &str, data: &[u8]) -> Imported {
        let p = dir.join(name);
        fs::write(&p, data).unwrap();
        let st = Stat::of(&fs::symlink_metadata(&p).unwrap());
        s.import_file(&p, &st, ImportMode::Copy).unwrap()
    }

    #[test]
    fn a_large_file_is_stored_in_chunks_under_its_whole_id_and_reads_back() {
        let (dir, s) = store();
        let data = noise(9 << 20, 1);
        let got = add(&s, dir.path(), "big", &data);
        assert_eq!(
            got.id,
            ObjectId::of(&data),
            "the id is the whole file's hash"
        );
        assert!(s.has(&got.id));
        assert!(!s.path(&got.id).exists(), "the whole file is not stored");
        let map = s.chunked(&got.id).unwrap().expect("stored in chunks");
        assert!(map.chunks.len() >= 9, "{} chunks", map.chunks.len());
        for (_, id, len) in map.offsets() {
            assert!(len <= CHUNK_MAX && s.has(&id));
        }
        let mut out = Vec::new();
        ChunkReader::new(s.clone(), map.clone())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        // Seeking lands inside the right chunk.
        let mut r = ChunkReader::new(s.clone(), map);
        r.seek(SeekFrom::Start(5_000_001)).unwrap();
        let mut b = [0u8; 100];
        r.read_exact(&mut b).unwrap();
        assert_eq!(&b[..], &data[5_000_001..5_000_101]);
        // put_chunked agrees, and a small file stays whole.
        let small = add(&s, dir.path(), "small", &data[..1000]);
        assert!(s.path(&small.id).exists());
        assert_eq!(s.chunk_map_of(&small.id, 1000).unwrap(), None);
    }

    #[test]
    fn an_edit_in_the_middle_stores_only_the_chunks_around_it() {
        let (dir, s) = store();
        let mut data = noise(16 << 20, 2);
        let a = add(&s, dir.path(), "v1", &data);
        let before: u64 = s.list().unwrap().iter().map(|(_, n)| n).sum();
        for b in &mut data[8 << 20..(8 << 20) + (1 << 20)] {
            *b ^= 0x55;
        }
        let b = add(&s, dir.path(), "v2", &data);
        assert_ne!(a.id, b.id);
        let after: u64 = s.list().unwrap().iter().map(|(_, n)| n).sum();
        let grown = after - before;
        assert!(
            grown < (1 << 20) + 4 * u64::from(CHUNK_MAX),
            "an edit of 1 MiB stored {grown} new bytes"
        );
    }

    #[test]
    fn a_new_file_is_copied_into_its_pack_and_a_new_head_on_old_bytes_stores_only_it() {
        let (dir, s) = store();
        let data = noise(12 << 20, 4);
        let a = add(&s, dir.path(), "a", &data);
        assert_eq!(a.stored, data.len() as u64, "a new file: all of it");
        // A new first chunk over bytes the store holds: its first chunk is new (the whole
        // file is copied), but only the new chunks are kept.
        let mut b = noise(200 << 10, 5);
        b.extend_from_slice(&data);
        let before: u64 = fs::read_dir(s.pack_dir())
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum();
        let got = add(&s, dir.path(), "b", &b);
        let after: u64 = fs::read_dir(s.pack_dir())
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(got.stored < 3 << 20, "stored {}", got.stored);
        assert!(
            after - before < 3 << 20,
            "the packs grew {}",
            after - before
        );
        assert!(
            fs::read_dir(s.tmp_dir()).unwrap().next().is_none(),
            "no temp left"
        );
        let mut out = Vec::new();
        s.reader(&got.id).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn a_map_that_does_not_assemble_to_its_file_is_refused() {
        let (dir, s) = store();
        let data = noise(5 << 20, 3);
        let got = add(&s, dir.path(), "f", &data);
        let map = s.chunked(&got.id).unwrap().unwrap();
        // A map claiming another file id over the same chunks.
        let lie = ChunkMap {
            file: ObjectId::of(b"another file"),
            ..map.clone()
        };
        let lie_id = s.put_bytes(&lie.encode()).unwrap();
        let err = s.put_chunked(&lie_id).unwrap_err();
        assert!(matches!(err, Error::ObjectCorrupt { .. }), "{err}");
        assert!(
            !s.has(&lie.file),
            "no link for a file that did not assemble"
        );
        // A map whose chunk is missing.
        let mut gone = map.clone();
        gone.chunks[1].0 = ObjectId::of(b"not here");
        gone.file = ObjectId::of(b"x");
        let gone_id = s.put_bytes(&gone.encode()).unwrap();
        let err = s.put_chunked(&gone_id).unwrap_err();
        assert!(matches!(err, Error::ObjectMissing { .. }), "{err}");
    }
}
