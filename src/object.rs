//! Trees, commits and dataset metadata, and their canonical, versioned encoding.
//!
//! Pure: no I/O. Every encoded object starts with a 4-byte magic and a version byte
//! (`LODT\x01` for trees, `LODT\x02` for trees with a chunked file, `LODC\x01` for commits,
//! `LODC\x02` for commits that name their author's [`Person`], `LODK\x01` for chunk maps),
//! followed by a postcard body (a chunk map: fixed-width fields); a commit ends with a 64-byte
//! ed25519 signature. See docs/FORMAT.md.
//!
//! Invariants: encoding is deterministic (entries sorted by name, maps are `BTreeMap`s), and
//! decoding is strict: it rejects unknown versions, trailing bytes, unsorted or duplicate
//! names, names that are empty, `.`, `..` or contain `/` or NUL, and any byte string that does
//! not re-encode to itself. The same tree therefore always has the same id.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::ObjectId;
use crate::person::Person;

const TREE_MAGIC: &[u8; 5] = b"LODT\x01";
/// A tree with at least one chunked file: its entries also carry their chunk map's id.
const TREE_CHUNKED_MAGIC: &[u8; 5] = b"LODT\x02";
const CHUNK_MAP_MAGIC: &[u8; 5] = b"LODK\x01";
const COMMIT_MAGIC: &[u8; 5] = b"LODC\x01";
/// A commit whose body is followed by its author's [`Person`].
const COMMIT_PERSON_MAGIC: &[u8; 5] = b"LODC\x02";

/// Whether `magic` (an object's first 5 bytes) is that of a commit, of either version.
pub fn is_commit_magic(magic: &[u8]) -> bool {
    magic == COMMIT_MAGIC || magic == COMMIT_PERSON_MAGIC
}
/// Domain separation for commit signatures.
const COMMIT_SIG_CONTEXT: &[u8] = b"lode-commit-v1\0";
/// Upper bound on one commit (and other small metadata objects), so a hostile object
/// cannot exhaust memory.
pub const MAX_OBJECT_META_SIZE: u64 = 64 << 20;
/// Upper bound on one tree object: 256 MiB, two million entries of names up to about 90
/// bytes (four million of 30). Trees were bounded by [`MAX_OBJECT_META_SIZE`] before, about
/// a million entries in one directory; the encoding did not change, only what a reader
/// accepts, so older repositories read as before.
pub const MAX_TREE_SIZE: u64 = 256 << 20;

/// What a tree entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file; its id names the blob of its bytes.
    File,
    /// A regular file with the executable bit.
    Executable,
    /// A directory; its id names a tree.
    Dir,
    /// A symbolic link; its id names a blob holding the link target.
    Symlink,
}

impl EntryKind {
    /// The permission bits a file of this kind is written with: `0o755` for an executable,
    /// `0o644` otherwise.
    pub fn file_mode(self) -> u32 {
        if self == EntryKind::Executable {
            0o755
        } else {
            0o644
        }
    }

    /// Returns the name used in listings and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Executable => "exec",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// One named entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    pub name: String,
    pub kind: EntryKind,
    /// Bytes of the file, of the link target, or of all files below a directory.
    pub size: u64,
    /// For a file, the BLAKE3 hash of its whole bytes, whether or not it is stored in chunks.
    pub id: ObjectId,
    /// For a file stored in content-defined chunks, the id of its [`ChunkMap`]. A tree
    /// where no entry has one is encoded as version 1, exactly as before chunks existed.
    pub chunks: Option<ObjectId>,
}

/// A tree entry as version 1 encodes it (no chunk map).
#[derive(Serialize)]
struct EntryV1<'a> {
    name: &'a str,
    kind: EntryKind,
    size: u64,
    id: ObjectId,
}

#[derive(Deserialize)]
struct OwnedEntryV1 {
    name: String,
    kind: EntryKind,
    size: u64,
    id: ObjectId,
}

/// How a file stored in chunks is put together: its whole-file id and size, then its chunks
/// in order (each an object named by the BLAKE3 hash of its bytes). Encoded as `LODK\x01`, the
/// file id (32 bytes), the size (u64 LE), the count (u32 LE), then per chunk its id (32
/// bytes) and length (u32 LE). Decoding is strict: exact length, chunk lengths in
/// `1..=MAX_CHUNK` that add up to the size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkMap {
    pub file: ObjectId,
    pub size: u64,
    pub chunks: Vec<(ObjectId, u32)>,
}

/// The largest chunk a chunk map may name (FastCDC's own upper bound): a hostile map cannot
/// make a reader hold more than this in memory for one chunk.
pub const MAX_CHUNK: u32 = 16 << 20;
/// Upper bound on a chunk map object: a 64 GiB file cut at 64 KiB on average.
pub const MAX_CHUNK_MAP_SIZE: u64 = 48 << 20;

/// A directory listing, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

/// Editable dataset metadata, recorded by each commit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub title: Option<String>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub authors: Vec<String>,
    pub keywords: Vec<String>,
    /// Free `key=value` pairs.
    pub extra: BTreeMap<String, String>,
}

/// The signed part of a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitBody {
    /// The dataset this commit belongs to (ed25519 public key of the dataset key).
    pub dataset: [u8; 32],
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    /// ed25519 public key of the device that made and signed the commit.
    pub author: [u8; 32],
    /// Seconds since the Unix epoch.
    pub time: i64,
    pub message: String,
    pub metadata: Metadata,
    /// Who the author's device claims to be (its identity's name, email, ORCID iD), signed
    /// with the commit. Not part of the derived encoding: a commit without one is encoded
    /// as version 1 (`LODC\x01`, as before), a commit with one as version 2 (`LODC\x02`), whose
    /// body is version 1's followed by the postcard encoding of the person. So each value
    /// still has one encoding, and old commits decode and verify unchanged.
    #[serde(skip)]
    pub person: Option<Person>,
}

/// A commit and its author's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub body: CommitBody,
    pub signature: [u8; 64],
}

/// An object failed to decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a {0} object (unknown magic or version)")]
    Magic(&'static str),
    #[error("malformed {0} object: {1}")]
    Body(&'static str, String),
    #[error("non-canonical {0} object")]
    NonCanonical(&'static str),
    #[error("invalid entry name {0:?} in tree")]
    BadName(String),
    #[error(
        "tree entry {0:?} names lode's control directory .lode (refused: checking it out could \
         overwrite the repository's own database)"
    )]
    ControlName(String),
    #[error("tree entries not sorted or duplicated at {0:?}")]
    Unsorted(String),
    #[error("commit signature does not verify")]
    BadSignature,
}

/// Checks that `name` can be one path component in any tree: not empty, `.` or `..`, no
/// `/` or NUL, and not a name that some file system resolves to `.lode`
/// ([`is_control_name`]).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && !is_control_name(name)
}

/// Whether `name`, as one path component, names lode's control directory `.lode` on some
/// file system a working tree may live on, the way git guards `.git` since CVE-2014-9390:
/// case-insensitively (macOS and Windows defaults), with the code points HFS+ ignores
/// removed, with NTFS's trailing dots and spaces and `:stream` suffix dropped, and as the
/// NTFS short name `LODE~N`.
pub fn is_control_name(name: &str) -> bool {
    // Code points HFS+ ignores when comparing names (git's `is_hfs_dotgit` list).
    const HFS_IGNORED: &[char] = &[
        '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}',
        '\u{202d}', '\u{202e}', '\u{206a}', '\u{206b}', '\u{206c}', '\u{206d}', '\u{206e}',
        '\u{206f}', '\u{feff}',
    ];
    if name.is_ascii() {
        // The common case, without allocating: no HFS-ignored code point is ASCII, and an
        // ASCII name folds to lower case byte for byte.
        let base = name.split(':').next().unwrap_or("");
        let base = base.trim_end_matches(['.', ' ']);
        return base.eq_ignore_ascii_case(".lode")
            || (base.len() > 5
                && base[..5].eq_ignore_ascii_case("lode~")
                && base[5..].bytes().all(|b| b.is_ascii_digit()));
    }
    let folded: String = name
        .chars()
        .filter(|c| !HFS_IGNORED.contains(c))
        .flat_map(char::to_lowercase)
        .collect();
    // NTFS: `name:stream` opens a stream of `name`; trailing dots and spaces are dropped.
    let base = folded.split(':').next().unwrap_or("");
    let base = base.trim_end_matches(['.', ' ']);
    if base == ".lode" {
        return true;
    }
    // NTFS 8.3 short names: `.lode` is also reachable as `LODE~1`, `LODE~2`...
    base.strip_prefix("lode~")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn decode_body<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    magic: &[u8; 5],
    what: &'static str,
) -> Result<T, DecodeError> {
    let body = bytes
        .strip_prefix(&magic[..])
        .ok_or(DecodeError::Magic(what))?;
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError::Body(what, e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Body(
            what,
            format!("{} trailing bytes", rest.len()),
        ));
    }
    Ok(value)
}

fn encode_body<T: Serialize>(magic: &[u8; 5], value: &T) -> Vec<u8> {
    // Serializing plain structs, strings and vectors into a Vec cannot fail.
    postcard::to_extend(value, magic.to_vec()).expect("postcard encodes in-memory values")
}

/// A tree entry borrowed from wherever its writer keeps it (fields as [`TreeEntry`]'s, in
/// the same order, so that it serializes to the same bytes).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EntryRef<'a> {
    pub name: &'a str,
    pub kind: EntryKind,
    pub size: u64,
    pub id: ObjectId,
    pub chunks: Option<ObjectId>,
}

impl<'a> From<&'a TreeEntry> for EntryRef<'a> {
    fn from(e: &'a TreeEntry) -> Self {
        EntryRef {
            name: &e.name,
            kind: e.kind,
            size: e.size,
            id: e.id,
            chunks: e.chunks,
        }
    }
}

/// The entries of a tree, made one at a time as they are serialized: as version 1 encodes
/// them (the same bytes as a `Vec<EntryV1>`), or with their chunk maps (the same bytes as
/// a `Vec<TreeEntry>`), without a second copy of a large directory's entries.
struct Entries<I> {
    entries: I,
    v1: bool,
}

impl<'a, I: Iterator<Item = EntryRef<'a>> + Clone> Serialize for Entries<I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.v1 {
            return s.collect_seq(self.entries.clone());
        }
        s.collect_seq(self.entries.clone().map(|e| EntryV1 {
            name: e.name,
            kind: e.kind,
            size: e.size,
            id: e.id,
        }))
    }
}

/// Encodes a tree of `entries` (sorted by name) canonically, as [`Tree::encode`] does, into
/// a buffer sized once: version 1 unless an entry names a chunk map.
pub fn encode_tree<'a, I>(entries: I) -> Vec<u8>
where
    I: ExactSizeIterator<Item = EntryRef<'a>> + Clone,
{
    let v1 = entries.clone().all(|e| e.chunks.is_none());
    // At most: name length (a varint of a u32), name, kind, size (a varint of a u64), id,
    // and the chunk map's tag and id.
    let most: usize = entries
        .clone()
        .map(|e| 5 + e.name.len() + 1 + 10 + 32 + if v1 { 0 } else { 33 })
        .sum();
    let magic = if v1 { TREE_MAGIC } else { TREE_CHUNKED_MAGIC };
    let mut out = Vec::with_capacity(magic.len() + 10 + most);
    out.extend_from_slice(&magic[..]);
    // A tree (version 2) is the struct `{ entries }`: postcard encodes it as that one field.
    postcard::to_extend(&Entries { entries, v1 }, out).expect("postcard encodes in-memory values")
}

impl Tree {
    /// Encodes the tree canonically: version 1 unless an entry names a chunk map.
    pub fn encode(&self) -> Vec<u8> {
        encode_tree(self.entries.iter().map(EntryRef::from))
    }

    /// Decodes and validates a tree.
    pub fn decode(bytes: &[u8]) -> Result<Tree, DecodeError> {
        let tree: Tree = if bytes.starts_with(TREE_CHUNKED_MAGIC) {
            decode_body(bytes, TREE_CHUNKED_MAGIC, "tree")?
        } else {
            let v1: Vec<OwnedEntryV1> = decode_body(bytes, TREE_MAGIC, "tree")?;
            Tree {
                entries: v1
                    .into_iter()
                    .map(|e| TreeEntry {
                        name: e.name,
                        kind: e.kind,
                        size: e.size,
                        id: e.id,
                        chunks: None,
                    })
                    .collect(),
            }
        };
        for (i, e) in tree.entries.iter().enumerate() {
            if e.chunks.is_some() && !matches!(e.kind, EntryKind::File | EntryKind::Executable) {
                return Err(DecodeError::Body(
                    "tree",
                    format!("entry {:?} is not a file but names a chunk map", e.name),
                ));
            }
            if is_control_name(&e.name) {
                return Err(DecodeError::ControlName(e.name.clone()));
            }
            if !valid_name(&e.name) {
                return Err(DecodeError::BadName(e.name.clone()));
            }
            if i > 0 && tree.entries[i - 1].name.as_bytes() >= e.name.as_bytes() {
                return Err(DecodeError::Unsorted(e.name.clone()));
            }
        }
        if tree.encode() != bytes {
            return Err(DecodeError::NonCanonical("tree"));
        }
        Ok(tree)
    }
}

impl ChunkMap {
    const HEAD: usize = 5 + 32 + 8 + 4;
    const ROW: usize = 32 + 4;

    /// Encodes the map (one value, one encoding).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::HEAD + Self::ROW * self.chunks.len());
        out.extend_from_slice(CHUNK_MAP_MAGIC);
        out.extend_from_slice(&self.file.0);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for (id, len) in &self.chunks {
            out.extend_from_slice(&id.0);
            out.extend_from_slice(&len.to_le_bytes());
        }
        out
    }

    /// Decodes and checks a chunk map.
    pub fn decode(bytes: &[u8]) -> Result<ChunkMap, DecodeError> {
        let bad = |m: String| DecodeError::Body("chunk map", m);
        if bytes.len() < Self::HEAD || !bytes.starts_with(CHUNK_MAP_MAGIC) {
            return Err(DecodeError::Magic("chunk map"));
        }
        let file = ObjectId(bytes[5..37].try_into().expect("32 bytes"));
        let size = u64::from_le_bytes(bytes[37..45].try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(bytes[45..49].try_into().expect("4 bytes")) as usize;
        let rows = &bytes[Self::HEAD..];
        if rows.len() != count.saturating_mul(Self::ROW) {
            return Err(bad(format!(
                "{} bytes of rows for {count} chunks",
                rows.len()
            )));
        }
        let mut chunks = Vec::with_capacity(count);
        let mut total = 0u64;
        for row in rows.chunks_exact(Self::ROW) {
            let id = ObjectId(row[..32].try_into().expect("32 bytes"));
            let len = u32::from_le_bytes(row[32..].try_into().expect("4 bytes"));
            if len == 0 || len > MAX_CHUNK {
                return Err(bad(format!("chunk {id} of {len} bytes")));
            }
            total += u64::from(len);
            chunks.push((id, len));
        }
        if total != size {
            return Err(bad(format!("chunks add up to {total} bytes, not {size}")));
        }
        Ok(ChunkMap { file, size, chunks })
    }

    /// Each chunk with its offset in the file.
    pub fn offsets(&self) -> impl Iterator<Item = (u64, ObjectId, u32)> + '_ {
        self.chunks.iter().scan(0u64, |at, (id, len)| {
            let here = *at;
            *at += u64::from(*len);
            Some((here, *id, *len))
        })
    }
}

impl Commit {
    /// Signs `body` with the device key.
    pub fn sign(body: CommitBody, key: &SigningKey) -> Commit {
        let msg = Self::signed_message(&body);
        Commit {
            signature: key.sign(&msg).to_bytes(),
            body,
        }
    }

    fn signed_message(body: &CommitBody) -> Vec<u8> {
        let mut msg = COMMIT_SIG_CONTEXT.to_vec();
        msg.extend(Self::encode_signed(body));
        msg
    }

    /// The magic and body: version 1 without a person, version 2 (the body, then the
    /// person) with one.
    fn encode_signed(body: &CommitBody) -> Vec<u8> {
        match &body.person {
            None => encode_body(COMMIT_MAGIC, body),
            Some(p) => {
                let mut out = encode_body(COMMIT_PERSON_MAGIC, body);
                out.extend(postcard::to_stdvec(p).expect("postcard encodes in-memory values"));
                out
            }
        }
    }

    /// Encodes the commit canonically.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Self::encode_signed(&self.body);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes a commit (the signature is checked by [`Commit::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Commit, DecodeError> {
        if bytes.len() < COMMIT_MAGIC.len() + 64 {
            return Err(DecodeError::Magic("commit"));
        }
        let (body_bytes, sig) = bytes.split_at(bytes.len() - 64);
        let body: CommitBody = if body_bytes.starts_with(COMMIT_PERSON_MAGIC) {
            let rest = &body_bytes[COMMIT_PERSON_MAGIC.len()..];
            let bad = |e: String| DecodeError::Body("commit", e);
            let (mut body, rest): (CommitBody, _) =
                postcard::take_from_bytes(rest).map_err(|e| bad(e.to_string()))?;
            let (person, rest): (Person, _) =
                postcard::take_from_bytes(rest).map_err(|e| bad(format!("author: {e}")))?;
            if !rest.is_empty() {
                return Err(bad(format!("{} trailing bytes", rest.len())));
            }
            person.check().map_err(|e| bad(format!("author: {e}")))?;
            body.person = Some(person);
            body
        } else {
            decode_body(body_bytes, COMMIT_MAGIC, "commit")?
        };
        let commit = Commit {
            body,
            signature: sig.try_into().expect("split at 64 bytes"),
        };
        if commit.encode() != bytes {
            return Err(DecodeError::NonCanonical("commit"));
        }
        Ok(commit)
    }

    /// Checks the author's signature.
    pub fn verify(&self) -> Result<(), DecodeError> {
        let key =
            VerifyingKey::from_bytes(&self.body.author).map_err(|_| DecodeError::BadSignature)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&Self::signed_message(&self.body), &sig)
            .map_err(|_| DecodeError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> TreeEntry {
        TreeEntry {
            name: name.into(),
            kind: EntryKind::File,
            size: 1,
            id: ObjectId::of(b"x"),
            chunks: None,
        }
    }

    #[test]
    fn trees_without_chunks_keep_version_1_and_chunked_ones_are_version_2() {
        let plain = Tree {
            entries: vec![entry("a"), entry("b")],
        };
        let bytes = plain.encode();
        assert_eq!(&bytes[..5], b"LODT\x01");
        // Version 1 is the encoding trees had before chunks: a struct of (name, kind, size,
        // id) per entry, nothing more (this literal was produced by the earlier encoder).
        let mut old = b"LODT\x01\x02\x01a\x00\x01".to_vec();
        old.extend(ObjectId::of(b"x").0);
        old.extend(b"\x01b\x00\x01");
        old.extend(ObjectId::of(b"x").0);
        assert_eq!(bytes, old);
        assert_eq!(Tree::decode(&bytes).unwrap(), plain);
        // Entries made as they are serialized: the bytes of a vector of them, at a length
        // whose count takes two bytes too.
        let many = Tree {
            entries: (0..300).map(|i| entry(&format!("f{i:03}"))).collect(),
        };
        let v1: Vec<EntryV1<'_>> = (many.entries.iter())
            .map(|e| EntryV1 {
                name: &e.name,
                kind: e.kind,
                size: e.size,
                id: e.id,
            })
            .collect();
        let mut want = TREE_MAGIC.to_vec();
        want.extend(postcard::to_stdvec(&v1).unwrap());
        assert_eq!(many.encode(), want);

        let mut chunked = plain.clone();
        chunked.entries[1].chunks = Some(ObjectId::of(b"map"));
        let cbytes = chunked.encode();
        assert_eq!(&cbytes[..5], b"LODT\x02");
        assert_eq!(Tree::decode(&cbytes).unwrap(), chunked);
        // Version 2 is the derived encoding of the `Tree` struct, whose entries are made one
        // at a time as they are serialized too.
        let mut derived = b"LODT\x02".to_vec();
        derived.extend(postcard::to_stdvec(&chunked).unwrap());
        assert_eq!(cbytes, derived);
        // A version-2 tree without any chunk map is not canonical (version 1 encodes it).
        let mut v2 = b"LODT\x02".to_vec();
        v2.extend(postcard::to_stdvec(&plain).unwrap());
        assert!(matches!(
            Tree::decode(&v2),
            Err(DecodeError::NonCanonical(_))
        ));
        // Only files may name a chunk map.
        let mut dir = chunked.clone();
        dir.entries[1].kind = EntryKind::Dir;
        assert!(Tree::decode(&dir.encode()).is_err());
    }

    #[test]
    fn chunk_maps_roundtrip_and_are_strict() {
        let map = ChunkMap {
            file: ObjectId::of(b"whole"),
            size: 30,
            chunks: vec![(ObjectId::of(b"a"), 10), (ObjectId::of(b"b"), 20)],
        };
        let bytes = map.encode();
        assert_eq!(ChunkMap::decode(&bytes).unwrap(), map);
        assert_eq!(
            map.offsets().map(|(at, _, n)| (at, n)).collect::<Vec<_>>(),
            vec![(0, 10), (10, 20)]
        );
        assert!(ChunkMap::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ChunkMap::decode(&longer).is_err());
        let mut wrong_size = map.clone();
        wrong_size.size = 31;
        assert!(ChunkMap::decode(&wrong_size.encode()).is_err());
        let mut empty_chunk = map.clone();
        empty_chunk.chunks.push((ObjectId::of(b"c"), 0));
        assert!(ChunkMap::decode(&empty_chunk.encode()).is_err());
        let mut huge = map.clone();
        huge.chunks = vec![(ObjectId::of(b"c"), MAX_CHUNK + 1)];
        huge.size = u64::from(MAX_CHUNK) + 1;
        assert!(ChunkMap::decode(&huge.encode()).is_err());
        let mut count = bytes.clone();
        count[45] = 3;
        assert!(ChunkMap::decode(&count).is_err());
        assert!(Tree::decode(&bytes).is_err() && ChunkMap::decode(b"LODT\x01").is_err());
    }

    #[test]
    fn tree_roundtrip_is_canonical() {
        let t = Tree {
            entries: vec![entry("a"), entry("b c"), entry("ü\n")],
        };
        let bytes = t.encode();
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
        assert_eq!(ObjectId::of(&bytes), ObjectId::of(&t.clone().encode()));
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(Tree::decode(&padded).is_err());
        assert!(Tree::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn control_names_are_refused_in_every_spelling() {
        for bad in [
            ".lode",
            ".LODE",
            ".Lode",
            ".lode.",
            ".lode. . ",
            ".lode::$INDEX_ALLOCATION",
            ".lode:stream",
            ".l\u{200c}ode",
            "\u{feff}.lode",
            ".lo\u{206f}de",
            "LODE~1",
            "lode~12",
        ] {
            assert!(is_control_name(bad), "{bad:?}");
            assert!(!valid_name(bad), "{bad:?}");
            let t = Tree {
                entries: vec![entry(bad)],
            };
            assert!(
                matches!(Tree::decode(&t.encode()), Err(DecodeError::ControlName(_))),
                "{bad:?}"
            );
        }
        for ok in [
            ".lodeignore",
            "lode",
            ".lode-data",
            "x.lode",
            "lode~",
            "lode~1a",
            ".lodes",
        ] {
            assert!(!is_control_name(ok), "{ok:?}");
            assert!(valid_name(ok), "{ok:?}");
        }
    }

    #[test]
    fn tree_rejects_bad_names_and_order() {
        for bad in ["", ".", "..", "a/b", "a\0"] {
            let t = Tree {
                entries: vec![entry(bad)],
            };
            assert!(Tree::decode(&t.encode()).is_err(), "{bad:?}");
        }
        let t = Tree {
            entries: vec![entry("b"), entry("a")],
        };
        assert!(matches!(
            Tree::decode(&t.encode()),
            Err(DecodeError::Unsorted(_))
        ));
        let t = Tree {
            entries: vec![entry("a"), entry("a")],
        };
        assert!(Tree::decode(&t.encode()).is_err());
    }

    #[test]
    fn commit_sign_verify_and_tamper() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let body = CommitBody {
            dataset: [1; 32],
            tree: ObjectId::of(b"t"),
            parents: vec![],
            author: key.verifying_key().to_bytes(),
            time: 1,
            message: "m".into(),
            metadata: Metadata::default(),
            person: None,
        };
        let c = Commit::sign(body.clone(), &key);
        let bytes = c.encode();
        let d = Commit::decode(&bytes).unwrap();
        d.verify().unwrap();
        let mut tampered = d.clone();
        tampered.body.message = "n".into();
        assert!(tampered.verify().is_err());
        assert!(Tree::decode(&bytes).is_err());
        assert_eq!(&bytes[..5], b"LODC\x01");

        // With a person: version 2, signed with it, canonical, and strict about it.
        let person = Person::new("Ana Lee", Some("ana@lab.org"), None).unwrap();
        let named = Commit::sign(
            CommitBody {
                person: Some(person.clone()),
                ..body
            },
            &key,
        );
        let nbytes = named.encode();
        assert_eq!(&nbytes[..5], b"LODC\x02");
        let d = Commit::decode(&nbytes).unwrap();
        assert_eq!(d.body.person.as_ref(), Some(&person));
        d.verify().unwrap();
        let mut renamed = d.clone();
        renamed.body.person.as_mut().unwrap().name = "Ben Ortiz".into();
        assert!(renamed.verify().is_err(), "the name is signed");
        // A version-2 commit stripped of its person, or a version-1 body relabelled 2, is
        // refused rather than misread.
        let mut relabelled = bytes.clone();
        relabelled[4] = 2;
        assert!(Commit::decode(&relabelled).is_err());
        let mut v1 = nbytes.clone();
        v1[4] = 1;
        assert!(Commit::decode(&v1).is_err());
        // An invalid person is refused even under a valid signature.
        let bad = Commit::sign(
            CommitBody {
                person: Some(Person {
                    name: "A\nB".into(),
                    email: None,
                    orcid: None,
                }),
                ..named.body.clone()
            },
            &key,
        );
        assert!(Commit::decode(&bad.encode()).is_err());
    }
}
