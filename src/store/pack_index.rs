//! The indexes of packs (see `pack.rs`): where each object of a pack is, read from the
//! `<name>.idx` files and shared by the clones of a `Store`. This module knows nothing of
//! the store itself (the store holds a [`Packs`]; `pack.rs` writes and rewrites packs).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::id::ObjectId;

/// The directory of packs, under the objects directory.
pub(crate) const PACK_DIR: &str = "pack";
pub(crate) const PACK_SUFFIX: &str = ".pack";
pub(crate) const IDX_SUFFIX: &str = ".idx";
const IDX_MAGIC: &[u8; 8] = b"LODP\x01\0\0\0";
/// Bytes of one index entry: id, offset, length.
const ENTRY: usize = 32 + 8 + 4;
/// A directory modified this recently may change again within its timestamp's
/// granularity: it is listed again even when its time looks unchanged.
const SETTLING: Duration = Duration::from_secs(2);
/// But not more often than this while it settles.
pub(crate) const RELIST: Duration = Duration::from_millis(100);

/// About how many index entries share a run of [`State::fan`].
const PER_RUN: usize = 16;

/// The run of [`State::fan`] that id `id` is in: its first `bits` bits.
fn run_of(id: &ObjectId, bits: u32) -> usize {
    let first = u32::from_be_bytes(id.0[..4].try_into().expect("4 bytes"));
    first.checked_shr(32 - bits).unwrap_or(0) as usize
}

/// Where an object's bytes are in a pack.
#[derive(Clone, Debug)]
pub struct Loc {
    pub(crate) file: Arc<File>,
    pub offset: u64,
    pub len: u32,
    pub(crate) pack: Arc<str>,
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
pub(crate) struct Loaded {
    pub(crate) name: Arc<str>,
    pub(crate) file: Arc<File>,
}

/// The packs of one objects directory that this process knows (shared by the clones of a
/// `Store`).
#[derive(Debug, Default)]
pub(crate) struct Packs {
    state: Mutex<State>,
}

/// Where one object is: which loaded pack (its slot in [`State::slots`]), at which offset.
/// 48 bytes; a hash map of the same costs about twice that at a million objects (its
/// slack and control bytes), and all of it is touched.
#[derive(Clone, Copy, Debug)]
struct Entry {
    id: ObjectId,
    offset: u64,
    len: u32,
    slot: u32,
}

#[derive(Debug, Default)]
struct State {
    /// The directory's modification time when it was last listed, and when that was.
    listed: Option<(SystemTime, Instant)>,
    /// When the directory's time was last looked at.
    looked: Option<Instant>,
    /// Loaded packs by name: their slot.
    packs: HashMap<Arc<str>, u32>,
    /// Loaded packs by slot (`None`: forgotten; slots are not reused).
    slots: Vec<Option<Arc<Loaded>>>,
    /// Every loaded pack's entries, sorted by id; an object two packs hold has two.
    index: Vec<Entry>,
    /// Where each run of ids sharing their first `fan_bits` bits starts in `index` (and,
    /// last, its length): a lookup searches one run of about [`PER_RUN`] entries, not the
    /// whole index (at a million objects, 20 cache misses a lookup became 4).
    fan: Vec<u32>,
    fan_bits: u32,
    /// Packs whose index could not be read: name and why (`verify` reports them).
    bad: Vec<(String, String)>,
    /// A snapshot ([`Packs::snapshot`]): never listed again, packs named later not added.
    frozen: bool,
}

impl State {
    /// The entries of object `id` (one per pack that holds it).
    fn entries(&self, id: &ObjectId) -> &[Entry] {
        let k = run_of(id, self.fan_bits);
        let Some(run) = self.fan.get(k..k + 2) else {
            return &[];
        };
        let run = &self.index[run[0] as usize..run[1] as usize];
        let from = run.partition_point(|e| e.id < *id);
        let to = from + run[from..].partition_point(|e| e.id == *id);
        &run[from..to]
    }

    /// Builds [`State::fan`] for the index as it is now.
    fn index_runs(&mut self) {
        let n = self.index.len();
        self.fan_bits = (n / PER_RUN).max(1).ilog2().min(16);
        self.fan.clear();
        self.fan.resize((1 << self.fan_bits) + 1, 0);
        for e in &self.index {
            self.fan[run_of(&e.id, self.fan_bits) + 1] += 1;
        }
        for k in 1..self.fan.len() {
            self.fan[k] += self.fan[k - 1];
        }
    }

    fn loc(&self, id: &ObjectId) -> Option<Loc> {
        self.entries(id).iter().find_map(|e| {
            let p = self.slots[e.slot as usize].as_ref()?;
            Some(Loc {
                file: p.file.clone(),
                offset: e.offset,
                len: e.len,
                pack: p.name.clone(),
            })
        })
    }

    /// Adds a loaded pack and its entries (sorted by id, as an index holds them), merged
    /// into the index in place from its end: no second copy of the index.
    fn insert(&mut self, p: Arc<Loaded>, entries: &[(ObjectId, u64, u32)]) {
        debug_assert!(entries.windows(2).all(|w| w[0].0 <= w[1].0));
        let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 packs loaded");
        self.packs.insert(p.name.clone(), slot);
        self.slots.push(Some(p));
        let old = self.index.len();
        self.index.reserve_exact(entries.len());
        let blank = Entry {
            id: ObjectId([0; 32]),
            offset: 0,
            len: 0,
            slot,
        };
        self.index.resize(old + entries.len(), blank);
        let (mut i, mut k) = (old, old + entries.len());
        for &(id, offset, len) in entries.iter().rev() {
            while i > 0 && self.index[i - 1].id > id {
                self.index[k - 1] = self.index[i - 1];
                i -= 1;
                k -= 1;
            }
            self.index[k - 1] = Entry {
                id,
                offset,
                len,
                slot,
            };
            k -= 1;
        }
        self.index_runs();
    }

    /// Forgets the loaded packs for which `gone` says so, and their entries.
    fn forget_where(&mut self, gone: impl Fn(&str) -> bool) {
        let mut dropped = Vec::new();
        self.packs.retain(|name, slot| {
            let keep = !gone(name);
            if !keep {
                dropped.push(*slot);
            }
            keep
        });
        if dropped.is_empty() {
            return;
        }
        for slot in &dropped {
            self.slots[*slot as usize] = None;
        }
        let slots = &self.slots;
        self.index.retain(|e| slots[e.slot as usize].is_some());
        self.index_runs();
    }

    /// Lists `dir` again if it changed since it was last listed: loads new indexes, forgets
    /// removed packs.
    fn refresh(&mut self, dir: &Path) {
        if self.frozen {
            return;
        }
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
        let Ok(names) = names_with(dir, IDX_SUFFIX) else {
            return;
        };
        let names: HashSet<String> = names.into_iter().collect();
        self.forget_where(|name| !names.contains(name));
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
    /// The packs of `dir` as they are now, and only those: packs named later, by this
    /// process or another, are not loaded (see [`crate::store::Store::with_packs_as_now`]).
    pub(crate) fn snapshot(dir: &Path) -> Packs {
        let mut s = State::default();
        s.refresh(dir);
        s.frozen = true;
        Packs {
            state: Mutex::new(s),
        }
    }

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

    /// [`Packs::find`] among the packs loaded already, without looking at the directory.
    pub(crate) fn find_loaded(&self, id: &ObjectId) -> Option<Loc> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).loc(id)
    }

    /// The names of every pack in `dir` that holds one of the objects `ids` (an object can
    /// be in more than one: two writers stored it at once, or a repack is under way). The
    /// directory is looked at once, whatever the number of ids.
    pub(crate) fn holding<'a>(
        &self,
        dir: &Path,
        ids: impl IntoIterator<Item = &'a ObjectId>,
    ) -> HashSet<Arc<str>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.refresh(dir);
        let mut names = HashSet::new();
        for id in ids {
            for e in s.entries(id) {
                if let Some(p) = &s.slots[e.slot as usize] {
                    names.insert(p.name.clone());
                }
            }
        }
        names
    }

    /// Every object in the packs of `dir`: id and length, each id once, in id order.
    pub(crate) fn list(&self, dir: &Path) -> Vec<(ObjectId, u64)> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.listed = None;
        s.refresh(dir);
        let mut out: Vec<(ObjectId, u64)> = Vec::with_capacity(s.index.len());
        for e in &s.index {
            if out.last().is_none_or(|(id, _)| *id != e.id) {
                out.push((e.id, u64::from(e.len)));
            }
        }
        out
    }

    /// Packs of `dir` whose index is damaged: name and why.
    pub(crate) fn problems(&self, dir: &Path) -> Vec<(String, String)> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.listed = None;
        s.refresh(dir);
        s.bad.clone()
    }

    pub(crate) fn loaded(&self, name: &str) -> Option<Arc<Loaded>> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let slot = *s.packs.get(name)?;
        s.slots[slot as usize].clone()
    }

    /// Adds a pack this process named (`entries` sorted by id).
    pub(crate) fn add(&self, p: Loaded, entries: &[(ObjectId, u64, u32)]) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.frozen || s.packs.contains_key(&p.name) {
            return;
        }
        s.insert(Arc::new(p), entries);
    }

    pub(crate) fn forget(&self, name: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.forget_where(|n| n == name);
    }
}

/// The names of the files of `dir` that end in `suffix`, without it (`<name>.idx` → name).
pub(crate) fn names_with(dir: &Path, suffix: &str) -> io::Result<Vec<String>> {
    Ok(fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(suffix))
                .map(str::to_string)
        })
        .collect())
}

/// Reads and checks the index `dir/<name>.idx` and opens its pack.
#[allow(clippy::type_complexity)]
pub(crate) fn load(dir: &Path, name: &str) -> io::Result<(Loaded, Vec<(ObjectId, u64, u32)>)> {
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

/// Writes the index of `entries` (sorted here by id) to `out` as it encodes it, and returns
/// its name: the BLAKE3 hash of its bytes. No buffer of the whole index (44 bytes an
/// object: 2.9 MB for a pack writer's 64 MiB of 1 KiB files, two writers at once in `add`).
pub(crate) fn write_idx(
    entries: &mut [(ObjectId, u64, u32)],
    out: impl io::Write,
) -> io::Result<blake3::Hash> {
    use io::Write as _;
    entries.sort_unstable_by_key(|e| e.0);
    // The checksum ends the index and covers what is before it; the name covers all of it.
    let (mut body, mut all) = (blake3::Hasher::new(), blake3::Hasher::new());
    let mut out = io::BufWriter::with_capacity(64 << 10, out);
    let mut put = |bytes: &[u8]| {
        body.update(bytes);
        all.update(bytes);
        out.write_all(bytes)
    };
    put(IDX_MAGIC)?;
    put(&(entries.len() as u64).to_le_bytes())?;
    for (id, offset, len) in entries.iter() {
        let mut row = [0u8; ENTRY];
        row[..32].copy_from_slice(&id.0);
        row[32..40].copy_from_slice(&offset.to_le_bytes());
        row[40..].copy_from_slice(&len.to_le_bytes());
        put(&row)?;
    }
    let sum = body.finalize();
    all.update(sum.as_bytes());
    out.write_all(sum.as_bytes())?;
    out.flush()?;
    Ok(all.finalize())
}

/// Decodes an index, strictly: magic, count, entries in id order, checksum.
pub(crate) fn decode_idx(bytes: &[u8]) -> std::result::Result<Vec<(ObjectId, u64, u32)>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(name: &str) -> Arc<Loaded> {
        Arc::new(Loaded {
            name: name.into(),
            file: Arc::new(tempfile::tempfile().expect("temp file")),
        })
    }

    fn id(n: u8) -> ObjectId {
        ObjectId::of(&[n])
    }

    #[test]
    fn a_large_index_finds_every_object_through_its_runs() {
        let mut s = State::default();
        let ids: Vec<ObjectId> = (0..20_000u32)
            .map(|n| ObjectId::of(&n.to_le_bytes()))
            .collect();
        for (p, part) in ids.chunks(7_000).enumerate() {
            let mut e: Vec<_> = part
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i as u64, p as u32))
                .collect();
            e.sort_unstable_by_key(|e| e.0);
            s.insert(pack(&format!("p{p}")), &e);
        }
        assert!(s.fan_bits >= 10, "{} bits", s.fan_bits);
        assert!(ids.iter().all(|id| s.loc(id).is_some()));
        assert!(s.loc(&ObjectId::of(b"absent")).is_none());
        s.forget_where(|name| name == "p1");
        let found = ids.iter().filter(|id| s.loc(id).is_some()).count();
        assert_eq!(found, 20_000 - 7_000);
        s.forget_where(|_| true);
        assert!(ids.iter().all(|id| s.loc(id).is_none()));
    }

    /// Entries of ids `ns` (offset = n, length = pack number), sorted by id as an index.
    fn entries(ns: &[u8], pack: u32) -> Vec<(ObjectId, u64, u32)> {
        let mut v: Vec<_> = ns.iter().map(|&n| (id(n), u64::from(n), pack)).collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    #[test]
    fn packs_merged_into_one_sorted_index_find_every_object_until_forgotten() {
        let mut s = State::default();
        s.insert(pack("a"), &entries(&[1, 3, 5, 7, 9], 1));
        s.insert(pack("b"), &entries(&[2, 3, 4, 10], 2));
        s.insert(pack("c"), &entries(&[], 3));
        s.insert(pack("d"), &entries(&[0, 11, 9, 6, 8], 4));
        assert!(s.index.windows(2).all(|w| w[0].id <= w[1].id));
        assert_eq!(s.index.len(), 14);
        for n in 0..=11u8 {
            let loc = s.loc(&id(n)).expect("every object is found");
            assert_eq!(loc.offset, u64::from(n));
        }
        assert!(s.loc(&id(12)).is_none());
        // Object 3 is in packs a and b, 9 in a and d.
        let names = |s: &State, n| -> Vec<String> {
            let mut v: Vec<String> = s
                .entries(&id(n))
                .iter()
                .map(|e| s.slots[e.slot as usize].as_ref().unwrap().name.to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&s, 3), ["a", "b"]);
        assert_eq!(names(&s, 9), ["a", "d"]);
        // Forgetting a: what only it held goes, what b or d hold too stays.
        s.forget_where(|n| n == "a");
        assert_eq!(s.index.len(), 9);
        for n in [1u8, 5, 7] {
            assert!(s.loc(&id(n)).is_none(), "object {n} was only in a");
        }
        assert_eq!(&*s.loc(&id(3)).unwrap().pack, "b");
        assert_eq!(&*s.loc(&id(9)).unwrap().pack, "d");
        assert!(!s.packs.contains_key("a"));
        // A new pack after a forgotten one takes a new slot.
        s.insert(pack("e"), &entries(&[1], 5));
        assert_eq!(&*s.loc(&id(1)).unwrap().pack, "e");
    }
}
