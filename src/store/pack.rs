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

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::id::ObjectId;

use super::pack_index::{
    decode_idx, names_with, write_idx, Loaded, Loc, IDX_SUFFIX, PACK_DIR, PACK_SUFFIX,
};
use super::Store;

/// An object read from a pack ([`Store::reader`]).
pub struct PackSlice {
    loc: Loc,
    pos: u64,
}

impl PackSlice {
    /// The bytes left to read.
    pub(crate) fn left(&self) -> u64 {
        u64::from(self.loc.len).saturating_sub(self.pos)
    }
}

impl Read for PackSlice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.left().min(buf.len() as u64) as usize;
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
    /// Bytes not yet written to `tmp`: objects are appended in writes of [`PACK_WRITE`]
    /// bytes, not a system call each.
    pending: Vec<u8>,
    at: u64,
    entries: Vec<(ObjectId, u64, u32)>,
    /// Positions in `entries`, hashed by id: what this pack holds, in 5 bytes an entry
    /// (a set of the ids themselves would be 33).
    ids: HashTable<u32>,
    /// Whether objects the store holds already are written again (a repack).
    check_store: bool,
}

impl PackWriter {
    /// Appends object `id` (`data`, whose hash the caller checked) unless the store or this
    /// pack holds it; returns whether it was written.
    pub fn add(&mut self, id: ObjectId, data: &[u8]) -> Result<bool> {
        let entries = &self.entries;
        if self
            .ids
            .find(id_hash(&id), |&i| entries[i as usize].0 == id)
            .is_some()
            || (self.check_store && self.store.has(&id))
        {
            return Ok(false);
        }
        let at = u32::try_from(self.entries.len())
            .map_err(|_| Error::Other("too many objects for one pack".into()))?;
        let len = u32::try_from(data.len())
            .map_err(|_| Error::Other(format!("object {id} is too large for a pack")))?;
        if self.tmp.is_none() {
            self.tmp = Some(self.store.temp()?);
        }
        self.pending.extend_from_slice(data);
        if self.pending.len() >= PACK_WRITE {
            self.write_pending()?;
        }
        self.entries.push((id, self.at, len));
        let entries = &self.entries;
        self.ids
            .insert_unique(id_hash(&id), at, |&i| id_hash(&entries[i as usize].0));
        self.at += u64::from(len);
        Ok(true)
    }

    fn write_pending(&mut self) -> Result<()> {
        if let Some(tmp) = self.tmp.as_mut() {
            tmp.write_all(&self.pending)
                .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
        }
        self.pending.clear();
        Ok(())
    }

    /// This writer for objects its caller found missing (a fetch's): the store is not asked
    /// again for each; one that arrived meanwhile is written again (an object may be in two
    /// packs).
    pub fn for_missing(mut self) -> PackWriter {
        self.check_store = false;
        self
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
        self.write_pending()?;
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        self.store
            .name_pack(PackSource::Temp(tmp), std::mem::take(&mut self.entries))
    }
}

impl super::ObjectSink for PackWriter {
    fn add(&mut self, id: ObjectId, data: &[u8]) -> Result<bool> {
        PackWriter::add(self, id, data)
    }
}

/// A pack writer writes its objects in pieces of about this many bytes.
const PACK_WRITE: usize = 1 << 20;

/// An object id's hash for a hash table: its first 8 bytes (it is a BLAKE3 hash already).
fn id_hash(id: &ObjectId) -> u64 {
    u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))
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

    /// [`Store::packed`] among the packs this process has loaded, without looking at the
    /// pack directories again.
    pub(crate) fn packed_loaded(&self, id: &ObjectId) -> Option<Loc> {
        self.packs
            .find_loaded(id)
            .or_else(|| self.under.as_ref()?.1.find_loaded(id))
    }

    /// The pack file holding object `id` and where its bytes start in it (for messages
    /// and tools that name the file a damaged object is in).
    pub fn pack_file_of(&self, id: &ObjectId) -> Option<(PathBuf, u64)> {
        let loc = self.packed(id)?;
        let own = self.pack_dir().join(format!("{}{PACK_SUFFIX}", loc.pack));
        let file = match (&self.under, own.exists()) {
            (Some((under, _)), false) => under
                .join(PACK_DIR)
                .join(format!("{}{PACK_SUFFIX}", loc.pack)),
            _ => own,
        };
        Some((file, loc.offset))
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
            pending: Vec::new(),
            at: 0,
            entries: Vec::new(),
            ids: HashTable::new(),
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
        // The index is written first, to a temp file: its hash names the pack.
        let mut idx = self.temp()?;
        let name = write_idx(&mut entries, idx.as_file_mut())
            .map_err(|e| Error::io("cannot write", idx.path(), e))?
            .to_hex()
            .to_string();
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
        let _ = idx
            .as_file()
            .set_permissions(fs::Permissions::from_mode(0o444));
        match idx.persist_noclobber(&idx_path) {
            Ok(_) => {}
            // An index of this name is these bytes: it stands already.
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("cannot store", &idx_path, e.error)),
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
        let names = self.packs.holding(&self.pack_dir(), gone);
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
        let Ok(names) = names_with(&from, IDX_SUFFIX) else {
            return Ok(());
        };
        let to = self.pack_dir();
        fs::create_dir_all(&to).map_err(|e| Error::io("cannot create", &to, e))?;
        for name in names {
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
        let Ok(names) = names_with(&dir, PACK_SUFFIX) else {
            return 0;
        };
        let mut freed = 0;
        for name in names {
            if dir.join(format!("{name}{IDX_SUFFIX}")).exists() {
                continue;
            }
            let pack = dir.join(format!("{name}{PACK_SUFFIX}"));
            let Ok(meta) = fs::metadata(&pack) else {
                continue;
            };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if old && fs::remove_file(&pack).is_ok() {
                freed += meta.len();
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::super::pack_index::RELIST;
    use super::*;
    use crate::store::tests::store;

    #[test]
    fn a_writer_stores_each_object_once_and_removal_reaches_every_pack_holding_it() {
        let (_dir, s) = store();
        let objs: Vec<Vec<u8>> = (0..5000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let mut w = s.pack_writer();
        for (i, o) in objs.iter().enumerate() {
            assert!(w.add(ObjectId::of(o), o).unwrap(), "object {i} is new");
            let back = &objs[i / 2];
            assert!(
                !w.add(ObjectId::of(back), back).unwrap(),
                "object {} again",
                i / 2
            );
        }
        assert_eq!(w.bytes(), 4 * 5000);
        w.finish().unwrap();
        // A second pack holding object 7 again (two writers can store one object at once).
        let mut again = s.pack_writer();
        again.check_store = false;
        assert!(again.add(ObjectId::of(&objs[7]), &objs[7]).unwrap());
        again.finish().unwrap();
        assert_eq!(s.list_packed().len(), 5000, "listed once");
        let gone: HashSet<ObjectId> = [ObjectId::of(&objs[7])].into();
        s.unpack(&gone).unwrap();
        assert!(!s.has(&ObjectId::of(&objs[7])), "gone from both packs");
        assert!(s.has(&ObjectId::of(&objs[8])));
        let other = Store::new(s.objects.clone(), s.tmp.clone());
        assert!(!other.has(&ObjectId::of(&objs[7])));
        assert_eq!(other.list_packed().len(), 4999);
    }

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
