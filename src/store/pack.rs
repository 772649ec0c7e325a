//! Packs: many objects in one file (docs/ARCHITECTURE.md, "Packs").
//!
//! A file of 1 GiB held in chunks is about 4,000 objects; one file per object made `add`
//! and a first clone spend most of their system time creating inodes (on ext4 after a mass
//! deletion, skipping recently freed ones one by one). So the chunks a file brings in are
//! written to one *pack*: `objects/pack/<name>.pack`, the objects' bytes one after another
//! (for a file fetched whole, the fetched file itself, hard-linked: its bytes are its chunks
//! in order), and `objects/pack/<name>.idx`, the index of the objects in it. Objects stay
//! named by their BLAKE3 hash; a pack only says where their bytes are.
//!
//! Invariants:
//! - A pack is never changed once named. Removing objects from it (`gc`, a mirror's quota,
//!   a taint notice) writes a new pack of the objects that stay, then removes the old
//!   index and pack, so their bytes leave the disk. A reader that opened the old pack
//!   before keeps reading it (an unlinked file stays readable while open).
//! - The index is named after the pack, so a reader never sees an index before its pack;
//!   a pack without an index (a writer killed between the two) is ignored and removed by
//!   `gc`. The index ends with the BLAKE3 hash of what precedes it: a damaged index is
//!   refused, never misread.
//! - Reads through a pack are checked like any other: every caller that makes bytes
//!   visible hashes them against the object's id.
//! - Several processes read one store: each keeps the indexes it loaded and looks at the
//!   pack directory again when an object is not found and the directory changed.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::id::ObjectId;

use super::{create_whole, Store, Whole};

/// The directory of packs, under the objects directory.
pub(crate) const PACK_DIR: &str = "pack";
const PACK_SUFFIX: &str = ".pack";
const IDX_SUFFIX: &str = ".idx";
const IDX_MAGIC: &[u8; 8] = b"LODP\x01\0\0\0";
/// Bytes of one index entry: id, offset, length.
const ENTRY: usize = 32 + 8 + 4;
/// A directory modified this recently may change again within its timestamp's
/// granularity: it is listed again even when its time looks unchanged.
const SETTLING: Duration = Duration::from_secs(2);
/// But not more often than this while it settles.
const RELIST: Duration = Duration::from_millis(100);

/// Where an object's bytes are in a pack.
#[derive(Clone, Debug)]
pub struct Loc {
    pub(crate) file: Arc<File>,
    pub offset: u64,
    pub len: u32,
    pack: Arc<str>,
}

impl Loc {
    /// Reads the object's bytes (not hashed).
    pub fn read(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.offset)?;
        Ok(buf)
    }
}

/// One pack whose index was read (its entries are in [`State::index`] only: at a million
/// objects a second copy would cost 48 MB).
#[derive(Debug)]
struct Loaded {
    name: Arc<str>,
    file: Arc<File>,
}

/// The packs of one objects directory that this process knows (shared by the clones of a
/// [`Store`]).
#[derive(Debug, Default)]
pub(crate) struct Packs {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The directory's modification time when it was last listed, and when that was.
    listed: Option<(SystemTime, Instant)>,
    /// When the directory's time was last looked at.
    looked: Option<Instant>,
    packs: HashMap<Arc<str>, Arc<Loaded>>,
    index: HashMap<ObjectId, (Arc<Loaded>, u64, u32)>,
    /// Packs whose index could not be read: name and why (`verify` reports them).
    bad: Vec<(String, String)>,
}

impl State {
    fn loc(&self, id: &ObjectId) -> Option<Loc> {
        self.index.get(id).map(|(p, offset, len)| Loc {
            file: p.file.clone(),
            offset: *offset,
            len: *len,
            pack: p.name.clone(),
        })
    }

    fn insert(&mut self, p: Arc<Loaded>, entries: &[(ObjectId, u64, u32)]) {
        self.index.reserve(entries.len());
        for (id, offset, len) in entries {
            self.index.insert(*id, (p.clone(), *offset, *len));
        }
        self.packs.insert(p.name.clone(), p);
    }

    /// Lists `dir` again if it changed since it was last listed: loads new indexes, forgets
    /// removed packs.
    fn refresh(&mut self, dir: &Path) {
        self.looked = Some(Instant::now());
        let Ok(meta) = fs::metadata(dir) else {
            if !self.packs.is_empty() {
                *self = State::default();
            }
            return;
        };
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some((seen, at)) = self.listed {
            let settling = SystemTime::now()
                .duration_since(mtime)
                .map_or(true, |age| age < SETTLING);
            if seen == mtime && (!settling || at.elapsed() < RELIST) {
                return;
            }
        }
        self.listed = Some((mtime, Instant::now()));
        let Ok(rd) = fs::read_dir(dir) else {
            return;
        };
        let mut names = HashSet::new();
        for entry in rd.flatten() {
            if let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(IDX_SUFFIX))
            {
                names.insert(name.to_string());
            }
        }
        let before = self.packs.len();
        self.packs.retain(|name, _| names.contains(&**name));
        if before != self.packs.len() {
            self.index.retain(|_, (p, _, _)| names.contains(&*p.name));
        }
        self.bad.clear();
        for name in names {
            if self.packs.contains_key(name.as_str()) {
                continue;
            }
            match load(dir, &name) {
                Ok((p, entries)) => self.insert(Arc::new(p), &entries),
                Err(e) => self.bad.push((name, e.to_string())),
            }
        }
    }
}

impl Packs {
    /// Where object `id` is, if a pack in `dir` holds it. A pack another process removed
    /// (`gc`, a taint notice) is forgotten within [`RELIST`]: its bytes are not served on
    /// from a handle kept open.
    pub(crate) fn find(&self, dir: &Path, id: &ObjectId) -> Option<Loc> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = s.looked.is_some_and(|t| t.elapsed() < RELIST);
        if fresh {
            if let Some(loc) = s.loc(id) {
                return Some(loc);
            }
        }
        s.refresh(dir);
        s.loc(id)
    }

    /// Every object in the packs of `dir`: id and length.
    pub(crate) fn list(&self, dir: &Path) -> Vec<(ObjectId, u64)> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.listed = None;
        s.refresh(dir);
        s.index
            .iter()
            .map(|(id, (_, _, len))| (*id, u64::from(*len)))
            .collect()
    }

    /// Packs of `dir` whose index is damaged: name and why.
    pub(crate) fn problems(&self, dir: &Path) -> Vec<(String, String)> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.listed = None;
        s.refresh(dir);
        s.bad.clone()
    }

    fn loaded(&self, name: &str) -> Option<Arc<Loaded>> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.packs.get(name).cloned()
    }

    fn add(&self, p: Loaded, entries: &[(ObjectId, u64, u32)]) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.insert(Arc::new(p), entries);
    }

    fn forget(&self, name: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.packs.remove(name).is_some() {
            s.index.retain(|_, (p, _, _)| &*p.name != name);
        }
    }
}

/// Reads and checks the index `dir/<name>.idx` and opens its pack.
#[allow(clippy::type_complexity)]
fn load(dir: &Path, name: &str) -> io::Result<(Loaded, Vec<(ObjectId, u64, u32)>)> {
    let bytes = fs::read(dir.join(format!("{name}{IDX_SUFFIX}")))?;
    let entries = decode_idx(&bytes).map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))?;
    let file = File::open(dir.join(format!("{name}{PACK_SUFFIX}")))?;
    let size = file.metadata()?.len();
    if let Some((id, offset, len)) = entries
        .iter()
        .find(|(_, offset, len)| offset.saturating_add(u64::from(*len)) > size)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("its index places object {id} at {offset}+{len}, past the pack's end ({size} bytes)"),
        ));
    }
    Ok((
        Loaded {
            name: name.into(),
            file: Arc::new(file),
        },
        entries,
    ))
}

/// The bytes of an index of `entries` (sorted here by id).
fn encode_idx(entries: &mut [(ObjectId, u64, u32)]) -> Vec<u8> {
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(16 + entries.len() * ENTRY + 32);
    out.extend_from_slice(IDX_MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (id, offset, len) in entries.iter() {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Decodes an index, strictly: magic, count, entries in id order, checksum.
fn decode_idx(bytes: &[u8]) -> std::result::Result<Vec<(ObjectId, u64, u32)>, String> {
    if bytes.len() < 16 + 32 || &bytes[..8] != IDX_MAGIC {
        return Err("not a pack index of this format".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err("its checksum does not match (the index is damaged)".into());
    }
    let count = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let rest = &body[16..];
    if count.checked_mul(ENTRY as u64) != Some(rest.len() as u64) {
        return Err(format!("it claims {count} entries in {} bytes", rest.len()));
    }
    let mut out: Vec<(ObjectId, u64, u32)> = Vec::with_capacity(count as usize);
    for e in rest.chunks_exact(ENTRY) {
        let id = ObjectId(e[..32].try_into().expect("32 bytes"));
        if out.last().is_some_and(|(prev, _, _)| *prev >= id) {
            return Err("its entries are not in order".into());
        }
        let offset = u64::from_le_bytes(e[32..40].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(e[40..44].try_into().expect("4 bytes"));
        out.push((id, offset, len));
    }
    Ok(out)
}

/// An object read from a pack ([`Store::reader`]).
pub struct PackSlice {
    loc: Loc,
    pos: u64,
}

impl Read for PackSlice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = u64::from(self.loc.len).saturating_sub(self.pos);
        let want = left.min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .loc
            .file
            .read_at(&mut buf[..want], self.loc.offset + self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PackSlice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let next = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => u64::from(self.loc.len).checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = next.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// Writes objects into one new pack ([`Store::pack_writer`]); nothing is visible until
/// [`PackWriter::finish`] names it. Dropped unfinished, it leaves nothing (its temp file
/// goes; one a killed process leaves is removed by `gc`).
pub struct PackWriter {
    store: Store,
    tmp: Option<NamedTempFile>,
    at: u64,
    entries: Vec<(ObjectId, u64, u32)>,
    ids: HashSet<ObjectId>,
    /// Whether objects the store holds already are written again (a repack).
    check_store: bool,
}

impl PackWriter {
    /// Appends object `id` (`data`, whose hash the caller checked) unless the store or this
    /// pack holds it; returns whether it was written.
    pub fn add(&mut self, id: ObjectId, data: &[u8]) -> Result<bool> {
        if self.ids.contains(&id) || (self.check_store && self.store.has(&id)) {
            return Ok(false);
        }
        let len = u32::try_from(data.len())
            .map_err(|_| Error::Other(format!("object {id} is too large for a pack")))?;
        if self.tmp.is_none() {
            self.tmp = Some(self.store.temp()?);
        }
        let tmp = self.tmp.as_mut().expect("made above");
        tmp.write_all(data)
            .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
        self.entries.push((id, self.at, len));
        self.ids.insert(id);
        self.at += u64::from(len);
        Ok(true)
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.at
    }

    /// Appends small objects received whole (a fetched batch): each one's bytes are hashed
    /// and must match its id, else `ObjectCorrupt` and nothing more is added. Returns how
    /// many were new.
    pub fn add_checked(&mut self, objects: &[(ObjectId, &[u8])]) -> Result<u64> {
        let mut added = 0;
        for (id, data) in objects {
            if ObjectId::of(data) != *id {
                return Err(Error::ObjectCorrupt {
                    id: *id,
                    path: None,
                });
            }
            if self.add(*id, data)? {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Names the pack and its index; its objects are in the store from now on. Not synced
    /// (the caller syncs the store before making them reachable).
    pub fn finish(mut self) -> Result<()> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        self.store
            .name_pack(PackSource::Temp(tmp), std::mem::take(&mut self.entries))
    }
}

/// Where a new pack's bytes come from.
enum PackSource<'a> {
    /// A temp file of the store, renamed into place.
    Temp(NamedTempFile),
    /// An object file of the store whose bytes are the objects at their offsets,
    /// hard-linked into place (it stays where it is).
    Link(&'a Path),
}

impl Store {
    /// The directory of this store's packs.
    pub(crate) fn pack_dir(&self) -> PathBuf {
        self.objects.join(PACK_DIR)
    }

    /// Where object `id` is if a pack holds it (this store's packs, then for a quarantine
    /// those of the store behind it).
    pub fn packed(&self, id: &ObjectId) -> Option<Loc> {
        if let Some(loc) = self.packs.find(&self.pack_dir(), id) {
            return Some(loc);
        }
        let (under, packs) = self.under.as_ref()?;
        packs.find(&under.join(PACK_DIR), id)
    }

    /// Object `id` from a pack, as a reader.
    pub(crate) fn packed_reader(&self, id: &ObjectId) -> Option<PackSlice> {
        self.packed(id).map(|loc| PackSlice { loc, pos: 0 })
    }

    /// Objects in this store's own packs: id and length.
    pub(crate) fn list_packed(&self) -> Vec<(ObjectId, u64)> {
        self.packs.list(&self.pack_dir())
    }

    /// Packs whose index cannot be read: (pack file, why).
    pub fn pack_problems(&self) -> Vec<(PathBuf, String)> {
        let dir = self.pack_dir();
        self.packs
            .problems(&dir)
            .into_iter()
            .map(|(name, why)| (dir.join(format!("{name}{PACK_SUFFIX}")), why))
            .collect()
    }

    /// A writer of one new pack of this store.
    pub fn pack_writer(&self) -> PackWriter {
        PackWriter {
            store: self.clone(),
            tmp: None,
            at: 0,
            entries: Vec::new(),
            ids: HashSet::new(),
            check_store: true,
        }
    }

    /// Makes the temp file `tmp` of this store a pack of the objects `entries` (id, offset,
    /// length; their bytes checked by the caller).
    pub(crate) fn pack_from_temp(
        &self,
        tmp: NamedTempFile,
        entries: Vec<(ObjectId, u64, u32)>,
    ) -> Result<()> {
        self.name_pack(PackSource::Temp(tmp), entries)
    }

    /// Makes the object file `whole` of this store a pack of the objects `entries` (id,
    /// offset, length; their bytes checked by the caller): hard-linked, nothing copied.
    pub(crate) fn link_pack(&self, whole: &Path, entries: Vec<(ObjectId, u64, u32)>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.name_pack(PackSource::Link(whole), entries)
    }

    /// Names a pack (its bytes from `src`) and then its index, and tells this process.
    fn name_pack(&self, src: PackSource, mut entries: Vec<(ObjectId, u64, u32)>) -> Result<()> {
        let dir = self.pack_dir();
        fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let idx = encode_idx(&mut entries);
        let name = blake3::hash(&idx).to_hex().to_string();
        let pack_path = dir.join(format!("{name}{PACK_SUFFIX}"));
        match src {
            PackSource::Temp(tmp) => {
                let _ = tmp
                    .as_file()
                    .set_permissions(fs::Permissions::from_mode(0o444));
                tmp.persist(&pack_path)
                    .map_err(|e| Error::io("cannot store pack", &pack_path, e.error))?;
            }
            PackSource::Link(whole) => match fs::hard_link(whole, &pack_path) {
                Ok(()) => {}
                // The same index names the same bytes: that pack is here already.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("cannot store pack", &pack_path, e)),
            },
        }
        let idx_path = dir.join(format!("{name}{IDX_SUFFIX}"));
        match create_whole(&idx_path, &idx, 0o444) {
            Ok(Whole::Created(_) | Whole::Exists) => {}
            Ok(Whole::Unsupported) => {
                let mut tmp = self.temp()?;
                tmp.write_all(&idx)
                    .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
                let _ = tmp
                    .as_file()
                    .set_permissions(fs::Permissions::from_mode(0o444));
                tmp.persist(&idx_path)
                    .map_err(|e| Error::io("cannot store", &idx_path, e.error))?;
            }
            Err(e) => return Err(Error::io("cannot store", &idx_path, e)),
        }
        let file = File::open(&pack_path).map_err(|e| Error::io("cannot open", &pack_path, e))?;
        self.packs.add(
            Loaded {
                name: name.into(),
                file: Arc::new(file),
            },
            &entries,
        );
        Ok(())
    }

    /// Removes the objects `gone` from this store's packs: a pack left empty is deleted, any
    /// other is rewritten without them (a new pack of the rest, then the old one goes).
    /// Returns the bytes freed on disk.
    pub(crate) fn unpack(&self, gone: &HashSet<ObjectId>) -> Result<u64> {
        let mut names: HashSet<Arc<str>> = HashSet::new();
        for id in gone {
            if let Some(loc) = self.packs.find(&self.pack_dir(), id) {
                names.insert(loc.pack);
            }
        }
        let mut freed = 0;
        for name in names {
            let Some(old) = self.packs.loaded(&name) else {
                continue;
            };
            let idx = self.pack_dir().join(format!("{name}{IDX_SUFFIX}"));
            let entries = fs::read(&idx)
                .map_err(|e| Error::io("cannot read", &idx, e))
                .and_then(|b| {
                    decode_idx(&b).map_err(|m| Error::io("cannot read", &idx, io::Error::other(m)))
                })?;
            let old_size = old.file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut rest = self.pack_writer();
            rest.check_store = false;
            let mut buf = Vec::new();
            for (id, offset, len) in &entries {
                if gone.contains(id) {
                    continue;
                }
                buf.resize(*len as usize, 0);
                let read = old.file.read_exact_at(&mut buf, *offset);
                // A damaged object is not carried into the new pack (`verify` reports it
                // missing).
                if read.is_ok() && ObjectId::of(&buf) == *id {
                    rest.add(*id, &buf)?;
                }
            }
            let new_size = rest.at;
            rest.finish()?;
            let dir = self.pack_dir();
            for suffix in [IDX_SUFFIX, PACK_SUFFIX] {
                let p = dir.join(format!("{name}{suffix}"));
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("cannot remove", p, e)),
                }
            }
            self.packs.forget(&name);
            freed += old_size.saturating_sub(new_size);
        }
        Ok(freed)
    }

    /// Moves the packs of quarantine `q` into this store (each pack before its index).
    pub(super) fn admit_packs(&self, q: &Store) -> Result<()> {
        let from = q.pack_dir();
        let Ok(rd) = fs::read_dir(&from) else {
            return Ok(());
        };
        let to = self.pack_dir();
        fs::create_dir_all(&to).map_err(|e| Error::io("cannot create", &to, e))?;
        for entry in rd.flatten() {
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(IDX_SUFFIX))
                .map(str::to_string)
            else {
                continue;
            };
            for suffix in [PACK_SUFFIX, IDX_SUFFIX] {
                let (a, b) = (
                    from.join(format!("{name}{suffix}")),
                    to.join(format!("{name}{suffix}")),
                );
                fs::rename(&a, &b).map_err(|e| Error::io("cannot admit", &b, e))?;
            }
        }
        Ok(())
    }

    /// Removes packs that have no index (a writer killed between naming the two) and were
    /// last changed over an hour ago; returns how many bytes went.
    pub(crate) fn remove_orphan_packs(&self) -> u64 {
        let dir = self.pack_dir();
        let Ok(rd) = fs::read_dir(&dir) else {
            return 0;
        };
        let mut freed = 0;
        for entry in rd.flatten() {
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(PACK_SUFFIX))
                .map(str::to_string)
            else {
                continue;
            };
            if dir.join(format!("{name}{IDX_SUFFIX}")).exists() {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if old && fs::remove_file(entry.path()).is_ok() {
                freed += meta.len();
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store;

    #[test]
    fn objects_in_a_pack_read_back_and_a_repack_drops_only_what_goes() {
        let (_dir, s) = store();
        let objs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
        let mut w = s.pack_writer();
        for o in &objs {
            assert!(w.add(ObjectId::of(o), o).unwrap());
        }
        assert!(!w.add(ObjectId::of(&objs[0]), &objs[0]).unwrap(), "once");
        w.finish().unwrap();
        for o in &objs {
            let id = ObjectId::of(o);
            assert!(s.has(&id));
            let mut got = Vec::new();
            s.reader(&id).unwrap().read_to_end(&mut got).unwrap();
            assert_eq!(&got, o);
        }
        // Another process (a fresh store over the same directory) finds them too.
        let other = Store::new(s.objects.clone(), s.tmp.clone());
        assert_eq!(other.list_packed().len(), 5);
        let gone: HashSet<ObjectId> = [ObjectId::of(&objs[1]), ObjectId::of(&objs[3])].into();
        s.unpack(&gone).unwrap();
        for (i, o) in objs.iter().enumerate() {
            let here = s.has(&ObjectId::of(o));
            assert_eq!(here, i != 1 && i != 3, "object {i}");
        }
        let packs: Vec<_> = fs::read_dir(s.pack_dir()).unwrap().flatten().collect();
        assert_eq!(packs.len(), 2, "one pack and its index remain");
        // The other store sees the change once its view is older than RELIST.
        std::thread::sleep(RELIST + Duration::from_millis(50));
        assert!(!other.has(&ObjectId::of(&objs[1])));
        assert!(other.has(&ObjectId::of(&objs[2])));
        // Removing the rest removes the pack.
        let rest: HashSet<ObjectId> = objs.iter().map(|o| ObjectId::of(o)).collect();
        s.unpack(&rest).unwrap();
        assert_eq!(fs::read_dir(s.pack_dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_index_is_refused_and_reported() {
        let (_dir, s) = store();
        let mut w = s.pack_writer();
        w.add(ObjectId::of(b"abc"), b"abc").unwrap();
        w.finish().unwrap();
        let idx = fs::read_dir(s.pack_dir())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(IDX_SUFFIX))
            .unwrap()
            .path();
        let mut bytes = fs::read(&idx).unwrap();
        bytes[20] ^= 1;
        fs::set_permissions(&idx, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&idx, &bytes).unwrap();
        let fresh = Store::new(s.objects.clone(), s.tmp.clone());
        assert!(!fresh.has(&ObjectId::of(b"abc")));
        let problems = fresh.pack_problems();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].1.contains("checksum"), "{:?}", problems[0]);
    }
}
