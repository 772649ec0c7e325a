//! The object store: one immutable, read-only file per object under `.lode/objects/ab/<rest
//! of the hex id>`, written through `.lode/tmp` and renamed into place.
//!
//! Invariants:
//! - An object file appears only complete and only under the name of its BLAKE3 hash: bytes
//!   are hashed while they are copied, and the temp file is renamed only when the hash is
//!   known. A killed writer leaves at most a temp file in `.lode/tmp` (removed by `gc`).
//!   Small objects received in batches ([`Store::put_many`]) are written to a nameless file
//!   (`O_TMPFILE`) that is linked under its final name once complete ([`create_whole`]):
//!   a killed writer leaves nothing at all.
//! - Reads that make data visible (checkout, cat) hash what they copy and refuse on mismatch.
//! - Durability: writers call [`Store::sync`] (one `syncfs`) before a redb transaction makes
//!   the new objects reachable, like git's batched fsync.
//! - No file is held in memory whole: files above [`SMALL_FILE`] are streamed.
//!
//! Plain files rather than iroh-blobs' `FsStore`: see docs/ARCHITECTURE.md ("Why not FsStore").

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::id::ObjectId;

pub mod chunks;
pub mod cut;
pub mod pack;
pub mod pack_index;

/// Files up to this size are read into memory in one piece; larger ones are streamed.
pub const SMALL_FILE: u64 = 1 << 20;
const CHUNK: usize = 1 << 20;

/// How `add` brings a file's bytes into the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImportMode {
    /// Copy the bytes (a reflink where the filesystem supports it). The working file and the
    /// stored object are independent.
    #[default]
    Copy,
    /// Hard-link the working file into the store and make it read-only: no second copy on
    /// disk, but editing the file in place (after `chmod +w`) damages the stored object.
    Link,
}

/// The parts of `lstat` that tell whether a file changed (the stat cache of the index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub mode: u32,
}

impl Stat {
    /// Extracts the cache fields from file metadata.
    pub fn of(m: &fs::Metadata) -> Stat {
        Stat {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
            mode: m.mode(),
        }
    }

    /// Reports whether the executable bit is set for the owner.
    pub fn executable(&self) -> bool {
        self.mode & 0o100 != 0
    }
}

/// A file brought into the store.
#[derive(Clone, Copy, Debug)]
pub struct Imported {
    pub id: ObjectId,
    /// The file's stat after import (what the index caches).
    pub stat: Stat,
    /// How many new bytes were written to the store: 0 when deduplicated; for a file held
    /// in chunks, the bytes of the chunks that were new.
    pub stored: u64,
}

/// The content-addressed object store of one repository.
#[derive(Clone, Debug)]
pub struct Store {
    objects: PathBuf,
    tmp: PathBuf,
    /// For a quarantine ([`Store::quarantine`]): the objects directory of the store it sits
    /// in front of, and its packs. Reads fall through to it; writes never go there.
    under: Option<(PathBuf, Arc<pack_index::Packs>)>,
    /// The packs of `objects` this process has read ([`pack`]).
    packs: Arc<pack_index::Packs>,
    /// Files assembled from their chunks (and hashed) while a fetch checked them, kept for
    /// the checkout that follows (shared by every clone of this store and its quarantines).
    prepared: Arc<Prepared>,
}

/// Assembled files waiting for a checkout ([`Store::prepare_for_checkout`]).
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub(crate) enabled: std::sync::atomic::AtomicBool,
    /// File id → its assembled bytes in a temp file of `.lode/tmp` (removed when dropped).
    pub(crate) files: std::sync::Mutex<std::collections::HashMap<ObjectId, tempfile::TempPath>>,
}

/// Ends [`Store::prepare_for_checkout`] when dropped: unclaimed assembled files go.
#[derive(Debug)]
pub struct PreparedGuard(Arc<Prepared>);

impl Drop for PreparedGuard {
    fn drop(&mut self) {
        self.0
            .enabled
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.0
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Store {
    /// Opens the store whose objects live in `objects` and temp files in `tmp`.
    pub fn new(objects: PathBuf, tmp: PathBuf) -> Store {
        Store {
            objects,
            tmp,
            under: None,
            packs: Arc::default(),
            prepared: Arc::default(),
        }
    }

    /// Asks that a chunked file whose chunks a fetch checks ([`Store::put_chunked`]) be
    /// assembled into a temp file at the same time, for the checkout that follows to rename
    /// into place ([`Store::take_prepared`]) instead of reading and hashing the chunks again.
    /// Until the returned guard is dropped; then files no checkout claimed are removed.
    #[must_use = "files are prepared only while the guard lives"]
    pub fn prepare_for_checkout(&self) -> PreparedGuard {
        self.prepared
            .enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        PreparedGuard(self.prepared.clone())
    }

    /// The temp file holding file `id`'s bytes, assembled and hashed by a fetch, if one was
    /// prepared; it is the caller's to rename (it is removed when dropped).
    pub fn take_prepared(&self, id: &ObjectId) -> Option<tempfile::TempPath> {
        self.prepared
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// This store, but seeing only the packs it holds now: the packs its writers name from
    /// here on are not loaded into this process (an object in one of them is not found
    /// through this view; another view, or another process, finds it). For writers whose
    /// objects are known distinct, like `add`'s small files: at a million files, the
    /// process would otherwise hold an index entry for every object it just wrote.
    pub fn with_packs_as_now(&self) -> Store {
        Store {
            packs: Arc::new(pack_index::Packs::snapshot(&self.pack_dir())),
            ..self.clone()
        }
    }

    /// Creates a quarantine in `dir` (git's since 2.11, for received pushes): a store whose
    /// writes land in `dir` while reads also see this store's objects. Nothing written there
    /// is visible to readers of this store until [`Store::admit`] moves it in; deleting `dir`
    /// drops it.
    pub fn quarantine(&self, dir: &Path) -> Result<Store> {
        let q = Store {
            objects: dir.join("objects"),
            tmp: dir.join("tmp"),
            under: Some((self.objects.clone(), self.packs.clone())),
            packs: Arc::default(),
            prepared: self.prepared.clone(),
        };
        q.create()
            .map_err(|e| Error::io("cannot create a quarantine in", dir, e))?;
        Ok(q)
    }

    /// Moves every object of the quarantine `q` into this store, then syncs: after it, the
    /// objects are durable here and may be made reachable. Returns how many moved.
    pub fn admit(&self, q: &Store) -> Result<u64> {
        let mut moved = 0;
        for (id, _) in q.list_loose()? {
            let from = q.own_path(&id);
            let to = self.own_path(&id);
            if fs::symlink_metadata(&to).is_ok() {
                continue;
            }
            fs::rename(&from, &to).map_err(|e| Error::io("cannot admit object", &to, e))?;
            moved += 1;
        }
        self.admit_packs(q)?;
        // Links last: each names chunks that are in by now.
        for (id, _) in q.list_chunked()? {
            let (from, to) = (q.own_link_path(&id), self.own_link_path(&id));
            if fs::symlink_metadata(&to).is_err() {
                fs::rename(&from, &to).map_err(|e| Error::io("cannot admit", &to, e))?;
            }
        }
        self.sync()?;
        Ok(moved)
    }

    /// Creates the fan-out directories of a new store.
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.tmp)?;
        for i in 0..=255u8 {
            fs::create_dir_all(self.objects.join(hex::encode([i])))?;
        }
        Ok(())
    }

    /// Returns the path of an object's file (for a quarantine: where it is, in the
    /// quarantine or the store behind it).
    pub fn path(&self, id: &ObjectId) -> PathBuf {
        let own = self.own_path(id);
        match &self.under {
            Some((under, _)) if fs::symlink_metadata(&own).is_err() => object_path(under, id),
            _ => own,
        }
    }

    /// Where this store writes an object.
    fn own_path(&self, id: &ObjectId) -> PathBuf {
        object_path(&self.objects, id)
    }

    /// Where another store may rename a complete object it verified against `id` (the
    /// swarm's blob store, which keeps serving it from there); its directory is made.
    /// [`Store::seal`] finishes the job.
    pub fn landing_path(&self, id: &ObjectId) -> Result<PathBuf> {
        let dest = self.own_path(id);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        Ok(dest)
    }

    /// Makes an object renamed to its [`Store::landing_path`] read-only, as every object is.
    pub fn seal(&self, id: &ObjectId) {
        let _ = fs::set_permissions(self.own_path(id), fs::Permissions::from_mode(0o444));
    }

    /// Returns the temp directory (cleaned by `gc`).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Reports whether the object is present: stored whole, in a pack, or (a file) in
    /// chunks.
    pub fn has(&self, id: &ObjectId) -> bool {
        self.packed(id).is_some() || self.has_unpacked(id)
    }

    /// Whether the object is stored whole or (a file) in chunks: a `stat` or two.
    fn has_unpacked(&self, id: &ObjectId) -> bool {
        fs::symlink_metadata(self.path(id)).is_ok() || self.has_chunked(id)
    }

    /// A [`Store::has`] for a caller asking about many objects at once, to fetch those
    /// missing. Objects stored whole and chunk links live in fan-out directories
    /// (`objects/ab`); one that holds few names (as in a store whose objects are in packs)
    /// is listed once, instead of a `stat` per object asked about: a clone into packs makes
    /// no `stat` per object. The pack directories are looked at once, at the first object.
    /// An object stored after its directory was looked at may be reported missing (and
    /// fetched again: harmless).
    pub fn has_each(&self) -> impl FnMut(&ObjectId) -> bool + '_ {
        let mut listed: Vec<Option<Option<HashSet<String>>>> = vec![None; 256];
        let mut first = true;
        move |id| {
            let packed = match std::mem::take(&mut first) {
                true => self.packed(id),
                false => self.packed_loaded(id),
            };
            if packed.is_some() {
                return true;
            }
            let hex = id.to_hex();
            let names = listed[usize::from(id.0[0])].get_or_insert_with(|| {
                let mut names = HashSet::new();
                for objects in std::iter::once(&self.objects)
                    .chain(self.under.as_ref().map(|(under, _)| under))
                {
                    match fs::read_dir(objects.join(&hex[..2])) {
                        Ok(rd) => {
                            for e in rd {
                                let name = e.ok()?.file_name().into_string().ok()?;
                                if names.len() == FEW_NAMES {
                                    return None;
                                }
                                names.insert(name);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(_) => return None,
                    }
                }
                Some(names)
            });
            match names {
                Some(names) => {
                    let rest = &hex[2..];
                    names.contains(rest) || names.contains(&Store::link_name(rest))
                }
                None => self.has_unpacked(id),
            }
        }
    }

    /// A temp file in `.lode/tmp`, named `object-<pid>-XXXXXX` so that a later command can
    /// tell one a killed process left (see `crate::leftover`).
    pub fn temp(&self) -> Result<NamedTempFile> {
        tempfile::Builder::new()
            .prefix(&format!("object-{}-", std::process::id()))
            .tempfile_in(&self.tmp)
            .map_err(|e| Error::io("cannot create a temp file in", &self.tmp, e))
    }

    fn persist(&self, tmp: NamedTempFile, id: &ObjectId) -> Result<()> {
        let _ = tmp
            .as_file()
            .set_permissions(fs::Permissions::from_mode(0o444));
        let dest = self.own_path(id);
        tmp.persist(&dest)
            .map_err(|e| Error::io("cannot store object", &dest, e.error))?;
        Ok(())
    }

    /// Stores `data` (a tree, a commit, a link target) and returns its id.
    pub fn put_bytes(&self, data: &[u8]) -> Result<ObjectId> {
        let id = ObjectId::of(data);
        self.put_hashed(&id, data)?;
        Ok(id)
    }

    /// Stores `data`, already known to hash to `id`, through a temp file; returns whether it
    /// was new.
    fn put_hashed(&self, id: &ObjectId, data: &[u8]) -> Result<bool> {
        if self.has(id) {
            return Ok(false);
        }
        let dest = self.own_path(id);
        match create_whole(&dest, data, 0o444) {
            Ok(Whole::Created(_)) => return Ok(true),
            Ok(Whole::Exists) => return Ok(false),
            Ok(Whole::Unsupported) => {}
            Err(e) => return Err(Error::io("cannot store object", &dest, e)),
        }
        let mut tmp = self.temp()?;
        tmp.write_all(data)
            .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
        self.persist(tmp, id)?;
        Ok(true)
    }

    /// Stores small objects received whole (a fetched batch): each one's bytes are hashed and
    /// must match its id, else `ObjectCorrupt` and nothing more is written. Each file is made
    /// by [`create_whole`] (no temp name, no rename), falling back to [`Store::put_bytes`]
    /// where the file system cannot. Returns how many objects were new.
    pub fn put_many(&self, objects: &[(ObjectId, &[u8])]) -> Result<u64> {
        let mut whole = true;
        let mut stored = 0;
        for (id, data) in objects {
            if ObjectId::of(data) != *id {
                return Err(Error::ObjectCorrupt {
                    id: *id,
                    path: None,
                });
            }
            let dest = self.own_path(id);
            if whole {
                match create_whole(&dest, data, 0o444) {
                    Ok(Whole::Created(_)) => {
                        stored += 1;
                        continue;
                    }
                    Ok(Whole::Exists) => continue,
                    Ok(Whole::Unsupported) => whole = false,
                    Err(e) => return Err(Error::io("cannot store object", &dest, e)),
                }
            }
            // Checked above: not hashed again.
            if self.put_hashed(id, data)? {
                stored += 1;
            }
        }
        Ok(stored)
    }

    /// Reads an object of at most [`SMALL_FILE`] bytes whole and checks its hash
    /// (`ObjectCorrupt` on mismatch); `None` when it is larger (stream it instead).
    pub fn read_small(&self, id: &ObjectId) -> Result<Option<Vec<u8>>> {
        let f = self.reader(id)?;
        // Sized once where the length is known: one read, not a read per doubling.
        let mut buf = Vec::with_capacity(f.known_len().map_or(0, |n| n.min(SMALL_FILE)) as usize);
        f.take(SMALL_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read object", self.path(id), e))?;
        if buf.len() as u64 > SMALL_FILE {
            return Ok(None);
        }
        if ObjectId::of(&buf) != *id {
            return Err(Error::ObjectCorrupt {
                id: *id,
                path: None,
            });
        }
        Ok(Some(buf))
    }

    /// Brings the regular file at `path` into the store, detecting changes made while it
    /// is read. `before` is the `lstat` the caller walked with.
    pub fn import_file(&self, path: &Path, before: &Stat, mode: ImportMode) -> Result<Imported> {
        self.import_file_into(path, before, mode, None)
    }

    /// [`Store::import_file`], a copied file of at most [`SMALL_FILE`] bytes handed to
    /// `pack` (a [`pack::PackWriter`], when given) rather than stored as a file of its own:
    /// its object is in the store once the caller names the pack.
    pub fn import_file_into(
        &self,
        path: &Path,
        before: &Stat,
        mode: ImportMode,
        pack: Option<&mut dyn ObjectSink>,
    ) -> Result<Imported> {
        let io_err = |e| Error::io("cannot read", path, e);
        let src = File::open(path).map_err(io_err)?;
        let opened = Stat::of(&src.metadata().map_err(io_err)?);
        if &opened != before {
            return Err(Error::FileChanged(path.to_path_buf()));
        }
        let check_after = |f: &File| -> Result<Stat> {
            let after = Stat::of(&f.metadata().map_err(io_err)?);
            if after.size != before.size || after.mtime_ns != before.mtime_ns {
                return Err(Error::FileChanged(path.to_path_buf()));
            }
            Ok(after)
        };
        if mode == ImportMode::Link {
            let (id, n) = hash_reader(&src).map_err(io_err)?;
            if n != before.size {
                return Err(Error::FileChanged(path.to_path_buf()));
            }
            check_after(&src)?;
            if self.has(&id) {
                return Ok(Imported {
                    id,
                    stat: *before,
                    stored: 0,
                });
            }
            let dest = self.own_path(&id);
            match fs::hard_link(path, &dest) {
                Ok(()) => {
                    // The working file and the object share an inode from now on: make it
                    // read-only so that an editor cannot silently change the stored object.
                    let perm = fs::Permissions::from_mode(before.mode & 0o555);
                    fs::set_permissions(&dest, perm).map_err(io_err)?;
                    let stat = Stat::of(&fs::symlink_metadata(path).map_err(io_err)?);
                    return Ok(Imported {
                        id,
                        stat,
                        stored: before.size,
                    });
                }
                // Another filesystem: fall back to copying.
                Err(e) if e.raw_os_error() == Some(18) => {}
                Err(e) => return Err(Error::io("cannot link into the store", path, e)),
            }
        }
        if before.size <= SMALL_FILE {
            let mut buf = Vec::with_capacity(before.size as usize);
            (&src)
                .take(before.size + 1)
                .read_to_end(&mut buf)
                .map_err(io_err)?;
            if buf.len() as u64 != before.size {
                return Err(Error::FileChanged(path.to_path_buf()));
            }
            let stat = check_after(&src)?;
            let id = ObjectId::of(&buf);
            let stored = match pack {
                Some(pack) => pack.add(id, &buf)?,
                None if self.has(&id) => false,
                None => {
                    let mut tmp = self.temp()?;
                    tmp.write_all(&buf)
                        .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
                    self.persist(tmp, &id)?;
                    true
                }
            };
            let stored = if stored { before.size } else { 0 };
            return Ok(Imported { id, stat, stored });
        }
        if let Some(chunked) = self.import_chunked(path, &src, before, &check_after)? {
            return Ok(chunked);
        }
        let tmp = self.temp()?;
        let (id, hashed, copied) = copy_and_hash(path, &src, tmp.as_file()).map_err(io_err)?;
        if hashed != before.size || copied != before.size {
            return Err(Error::FileChanged(path.to_path_buf()));
        }
        let stat = check_after(&src)?;
        let stored = !self.has(&id);
        if stored {
            self.persist(tmp, &id)?;
        }
        let stored = if stored { before.size } else { 0 };
        Ok(Imported { id, stat, stored })
    }

    /// Moves a file whose bytes were verified to hash to `id` (by iroh-blobs while they
    /// streamed) into the store under that id.
    pub fn adopt(&self, file: &Path, id: &ObjectId) -> Result<()> {
        let _ = fs::set_permissions(file, fs::Permissions::from_mode(0o444));
        let dest = self.own_path(id);
        fs::rename(file, &dest).map_err(|e| Error::io("cannot store object", &dest, e))
    }

    /// Opens an object stored whole for reading ([`Store::reader`] reads any object).
    pub fn open(&self, id: &ObjectId) -> Result<File> {
        let path = self.path(id);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::ObjectMissing {
                id: *id,
                path: None,
            },
            _ => Error::io("cannot read object", path, e),
        })
    }

    /// Reads a small object (tree, commit, link target) whole and checks its hash.
    pub fn read_verified(&self, id: &ObjectId, limit: u64) -> Result<Vec<u8>> {
        let f = self.reader(id)?;
        let mut buf = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("cannot read object", self.path(id), e))?;
        if buf.len() as u64 > limit {
            return Err(Error::BadObject {
                id: *id,
                what: "metadata object",
                msg: format!("larger than {limit} bytes"),
            });
        }
        if ObjectId::of(&buf) != *id {
            return Err(Error::ObjectCorrupt {
                id: *id,
                path: None,
            });
        }
        Ok(buf)
    }

    /// Copies an object into `dest` while hashing it; fails with `ObjectCorrupt` on mismatch
    /// (the caller then discards `dest`, so nothing unverified becomes visible).
    pub fn copy_out(&self, id: &ObjectId, dest: &File) -> Result<u64> {
        let path = self.path(id);
        let src = match self.open(id) {
            Err(Error::ObjectMissing { .. }) => match self.packed(id) {
                // A packed object is at most a chunk: read, hashed and written from memory.
                Some(loc) => {
                    let data = loc
                        .read()
                        .map_err(|e| Error::io("cannot read object", self.pack_dir(), e))?;
                    if ObjectId::of(&data) != *id {
                        return Err(Error::ObjectCorrupt {
                            id: *id,
                            path: None,
                        });
                    }
                    let mut d = dest;
                    d.write_all(&data)
                        .map_err(|e| Error::io("cannot copy object", self.pack_dir(), e))?;
                    return Ok(data.len() as u64);
                }
                None => return self.copy_out_chunked(id, dest),
            },
            other => other?,
        };
        let (got, hashed, copied) = copy_and_hash(&path, &src, dest)
            .map_err(|e| Error::io("cannot copy object", &path, e))?;
        if got != *id || hashed != copied {
            return Err(Error::ObjectCorrupt {
                id: *id,
                path: None,
            });
        }
        Ok(copied)
    }

    /// Hashes an object's bytes; returns the hash and the size.
    pub fn rehash(&self, id: &ObjectId) -> Result<(ObjectId, u64)> {
        let f = self.reader(id)?;
        hash_reader(f).map_err(|e| Error::io("cannot read object", self.path(id), e))
    }

    /// Calls `f` with every entry of the fan-out directories and its name with the
    /// directory's two hex digits in front (an object's full hex id, or a link's).
    fn each_entry(&self, mut f: impl FnMut(&str, &fs::DirEntry)) -> Result<()> {
        for i in 0..=255u8 {
            let dir = self.objects.join(hex::encode([i]));
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot list", dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
                if let Some(name) = entry.file_name().to_str() {
                    f(&format!("{}{name}", hex::encode([i])), &entry);
                }
            }
        }
        Ok(())
    }

    /// Lists every object: id and size, stored whole or in a pack (not counting files held
    /// in chunks: [`Store::list_chunked`]).
    pub fn list(&self) -> Result<Vec<(ObjectId, u64)>> {
        let mut out = self.list_loose()?;
        out.extend(self.list_packed());
        Ok(out)
    }

    /// Lists every object file: id and size. Files that are not named like objects are
    /// skipped.
    fn list_loose(&self) -> Result<Vec<(ObjectId, u64)>> {
        let mut out = Vec::new();
        self.each_entry(|name, entry| {
            if let Ok(id) = name.parse::<ObjectId>() {
                out.push((id, entry.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        })?;
        Ok(out)
    }

    /// Lists the ids that start with `prefix` (at least 2 lowercase hex characters).
    pub fn list_prefix(&self, prefix: &str) -> Result<Vec<ObjectId>> {
        let dir = self.objects.join(&prefix[..2]);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io("cannot list", dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .filter(|n| n.starts_with(&prefix[2..]))
                .and_then(|n| format!("{}{n}", &prefix[..2]).parse::<ObjectId>().ok())
            {
                out.push(id);
            }
        }
        let hex = prefix.to_ascii_lowercase();
        for (id, _) in self.list_packed() {
            if id.to_hex().starts_with(&hex) && !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Deletes an object stored whole or in a pack ([`Store::remove_chunked`] removes a
    /// file held in chunks).
    pub fn remove(&self, id: &ObjectId) -> Result<()> {
        self.remove_objects(&[*id]).map(|_| ())
    }

    /// Deletes objects stored whole or in packs (each pack they are in is rewritten once,
    /// whatever the number of them it held); returns the bytes freed.
    pub fn remove_objects(&self, ids: &[ObjectId]) -> Result<u64> {
        let mut freed = 0;
        let mut packed = HashSet::new();
        for id in ids {
            let p = self.own_path(id);
            match fs::symlink_metadata(&p) {
                Ok(m) => {
                    fs::remove_file(&p).map_err(|e| Error::io("cannot remove object", &p, e))?;
                    freed += m.len();
                }
                Err(_) => {
                    packed.insert(*id);
                }
            }
        }
        if !packed.is_empty() {
            freed += self.unpack(&packed)?;
        }
        Ok(freed)
    }

    /// Flushes everything written to the store's filesystem to disk (one `syncfs`).
    pub fn sync(&self) -> Result<()> {
        let dir =
            File::open(&self.objects).map_err(|e| Error::io("cannot open", &self.objects, e))?;
        rustix::fs::syncfs(&dir)
            .map_err(|e| Error::io("cannot sync", &self.objects, io::Error::from(e)))
    }
}

/// Where small objects can go instead of a file each (a pack being written): `add` returns
/// whether the object was written (false: the store or the sink holds it already).
pub trait ObjectSink {
    fn add(&mut self, id: ObjectId, data: &[u8]) -> Result<bool>;
}

/// What [`create_whole`] did.
#[derive(Debug)]
pub enum Whole {
    /// The file was written and named; here it is, open for writing (for its `fstat`).
    Created(File),
    /// Something already stands at the destination; it was left alone and nothing was named.
    Exists,
    /// The file system (or a missing `/proc`) does not allow nameless files: nothing was
    /// written; use a temp file and a rename instead.
    Unsupported,
}

/// Creates the file `dest` (which should not exist) holding `data`, with permissions `mode`,
/// the cheap way for small files: a nameless file (`O_TMPFILE`) in `dest`'s directory is
/// written, then linked under `dest`. `dest` never exists half-written, and a killed process
/// leaves nothing behind (no temp name to clean up). Not synced: the caller syncs in bulk.
pub fn create_whole(dest: &Path, data: &[u8], mode: u32) -> io::Result<Whole> {
    use rustix::fs::{AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    // Created with its final permissions where the umask leaves them whole (a `fchmod` per
    // file saved); where the umask would take bits away, or is not known, they are set
    // after the write.
    let keeps_mode = umask().is_some_and(|m| m & mode == 0);
    let create_mode = if keeps_mode { mode } else { 0o600 };
    let fd = match rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(create_mode)) {
        Ok(fd) => fd,
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => {
            return Ok(Whole::Unsupported)
        }
        Err(e) => return Err(e.into()),
    };
    let mut file = File::from(fd);
    file.write_all(data)?;
    if !keeps_mode {
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
    }
    let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
    match rustix::fs::linkat(CWD, &proc_path, CWD, dest, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => Ok(Whole::Created(file)),
        Err(Errno::EXIST) => Ok(Whole::Exists),
        // No /proc (a container without it): the nameless file cannot be named.
        Err(Errno::NOENT) if fs::symlink_metadata("/proc/self/fd").is_err() => {
            Ok(Whole::Unsupported)
        }
        Err(e) => Err(e.into()),
    }
}

/// This process's umask, read once from `/proc/self/status` (reading it with `umask(2)`
/// would set it, racing threads that create files); `None` where that cannot be read.
fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

/// The path of an object's file in the objects directory `objects`.
fn object_path(objects: &Path, id: &ObjectId) -> PathBuf {
    let hex = id.to_hex();
    objects.join(&hex[..2]).join(&hex[2..])
}

/// Hashes everything `r` yields; returns the hash and the number of bytes.
pub fn hash_reader(mut r: impl Read) -> io::Result<(ObjectId, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hasher.finalize().into(), n))
}

/// A fan-out directory holding at most this many names is listed by [`Store::has_each`].
const FEW_NAMES: usize = 512;

/// Objects up to this size are copied through memory on the calling thread.
const INLINE_COPY: u64 = 1 << 20;

/// Copies `src` (opened from `path`) into `dest` and hashes it at the same time: a reflink
/// where the filesystem can, else (for objects over 1 MiB) an in-kernel copy on one thread
/// while this thread hashes a second handle. Returns (hash, bytes hashed, bytes copied).
fn copy_and_hash(path: &Path, src: &File, dest: &File) -> io::Result<(ObjectId, u64, u64)> {
    if rustix::fs::ioctl_ficlone(dest, src).is_ok() {
        let (id, n) = hash_reader(src)?;
        return Ok((id, n, dest.metadata()?.len()));
    }
    // A small object is read once, hashed and written from memory: a thread per file would
    // cost more than the copy (10,000 files of 64 KiB: 2.4 s, most of it thread start-up).
    let size = src.metadata()?.len();
    if size <= INLINE_COPY {
        let mut buf = Vec::with_capacity(size as usize);
        src.take(INLINE_COPY + 1).read_to_end(&mut buf)?;
        let id = ObjectId(*blake3::hash(&buf).as_bytes());
        let mut d = dest;
        d.write_all(&buf)?;
        let n = buf.len() as u64;
        return Ok((id, n, n));
    }
    let reader = File::open(path)?;
    std::thread::scope(|s| {
        let copier = s.spawn(move || {
            let mut d = dest;
            io::copy(&mut &reader, &mut d)
        });
        let hashed = hash_reader(src);
        let copied = copier
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("copy thread panicked")));
        let (id, n) = hashed?;
        Ok((id, n, copied?))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store in a temp dir (also used by the tests of `chunks`).
    pub(crate) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path().join("objects"), dir.path().join("tmp"));
        s.create().unwrap();
        (dir, s)
    }

    #[test]
    fn has_each_agrees_with_has_in_packs_loose_chunked_quarantined_and_crowded_directories() {
        let (dir, s) = store();
        let blob = |n: u32| n.to_le_bytes().repeat(8);
        let (a, b, c, d) = (blob(1), blob(2), blob(3), blob(4));
        let (ia, ib, ic, id) = (
            ObjectId::of(&a),
            ObjectId::of(&b),
            ObjectId::of(&c),
            ObjectId::of(&d),
        );
        s.put_bytes(&a).unwrap();
        let mut w = s.pack_writer();
        w.add(ib, &b).unwrap();
        w.finish().unwrap();
        // A chunk link (as `put_chunked` leaves one) stands for a file held in chunks.
        fs::write(s.own_link_path(&ic), [0u8; 32]).unwrap();
        let q = s.quarantine(&dir.path().join("q")).unwrap();
        let e = blob(5);
        let ie = q.put_bytes(&e).unwrap();
        for (store, present, absent) in [
            (&s, vec![ia, ib, ic], vec![id, ie]),
            (&q, vec![ia, ib, ic, ie], vec![id]),
        ] {
            let mut has = store.has_each();
            for i in &present {
                assert!(store.has(i) && has(i), "{i} is present");
            }
            for i in &absent {
                assert!(!store.has(i) && !has(i), "{i} is absent");
            }
        }
        // A fan-out directory with more names than are listed is asked object by object.
        let fan_out = s.own_path(&ia).parent().unwrap().to_path_buf();
        for n in 0..=FEW_NAMES {
            fs::write(fan_out.join(format!("x{n}")), b"").unwrap();
        }
        let same_dir = (100..10_000)
            .map(blob)
            .find(|o| ObjectId::of(o).0[0] == ia.0[0])
            .unwrap();
        let mut has = s.has_each();
        assert!(has(&ia));
        assert!(!has(&ObjectId::of(&same_dir)));
        s.put_bytes(&same_dir).unwrap();
        assert!(
            has(&ObjectId::of(&same_dir)),
            "not listed: looked at each time"
        );
    }

    #[test]
    fn put_many_writes_read_only_objects_and_skips_present_ones() {
        let (_dir, s) = store();
        let a = b"alpha".to_vec();
        let b = vec![7u8; 5000];
        let (ia, ib) = (ObjectId::of(&a), ObjectId::of(&b));
        s.put_bytes(&a).unwrap();
        let n = s.put_many(&[(ia, &a[..]), (ib, &b[..])]).unwrap();
        assert_eq!(n, 1, "only the missing object is new");
        assert_eq!(s.read_small(&ib).unwrap().unwrap(), b);
        assert!(fs::metadata(s.path(&ib)).unwrap().permissions().readonly());
        // Nothing is left in the temp directory: nameless files need no cleanup.
        assert_eq!(fs::read_dir(s.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn put_many_refuses_bytes_that_do_not_match_their_id() {
        let (_dir, s) = store();
        let good = b"good".to_vec();
        let id = ObjectId::of(b"something else");
        let err = s
            .put_many(&[(ObjectId::of(&good), &good[..]), (id, &good[..])])
            .unwrap_err();
        assert!(matches!(err, Error::ObjectCorrupt { .. }), "{err}");
        assert!(!s.has(&id), "nothing is stored under the wrong id");
    }

    #[test]
    fn create_whole_never_replaces_what_stands() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        assert!(matches!(
            create_whole(&dest, b"one", 0o644).unwrap(),
            Whole::Created(_) | Whole::Unsupported
        ));
        if fs::read(&dest).is_ok() {
            assert!(matches!(
                create_whole(&dest, b"two", 0o644).unwrap(),
                Whole::Exists
            ));
            assert_eq!(fs::read(&dest).unwrap(), b"one");
        }
    }
}
