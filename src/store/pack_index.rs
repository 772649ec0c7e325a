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
        let Ok(names) = names_with(dir, IDX_SUFFIX) else {
            return;
        };
        let names: HashSet<String> = names.into_iter().collect();
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

    pub(crate) fn loaded(&self, name: &str) -> Option<Arc<Loaded>> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.packs.get(name).cloned()
    }

    pub(crate) fn add(&self, p: Loaded, entries: &[(ObjectId, u64, u32)]) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.insert(Arc::new(p), entries);
    }

    pub(crate) fn forget(&self, name: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.packs.remove(name).is_some() {
            s.index.retain(|_, (p, _, _)| &*p.name != name);
        }
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

/// The bytes of an index of `entries` (sorted here by id).
pub(crate) fn encode_idx(entries: &mut [(ObjectId, u64, u32)]) -> Vec<u8> {
    entries.sort_unstable_by_key(|e| e.0);
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
