//! Reading history: revision parsing, `log`, `show`, `diff`, `tag`, `ls`, `cat`.

use std::collections::BTreeMap;
use std::io::{self, Write};

use redb::ReadableTable;

use crate::db::REFS;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::keys::key_to_hex;
use crate::object::{Commit, EntryKind, Metadata};
use crate::repo::{FlatEntry, Repo};
use crate::worktree::under;

use super::status::{compare, scan_worktree, Change};

/// Resolves a revision: `HEAD`, `main`, a tag, a commit id or unique prefix (4+ hex
/// characters), each optionally followed by `~N` (N first parents back) or `^`.
pub fn resolve(repo: &Repo, rev: &str) -> Result<ObjectId> {
    let (base, back) = split_ancestry(rev)?;
    let mut id = resolve_base(repo, base, rev)?;
    for _ in 0..back {
        let c = repo.read_commit(&id)?;
        id = *c.body.parents.first().ok_or(Error::RevTooFarBack {
            rev: rev.to_string(),
            n: back,
        })?;
    }
    Ok(id)
}

/// Splits `REV~N^…` into the base (`HEAD` when empty) and the number of first parents back.
pub(crate) fn split_ancestry(rev: &str) -> Result<(&str, usize)> {
    let cut = rev.find(['~', '^']).unwrap_or(rev.len());
    let (base, mut rest) = rev.split_at(cut);
    let mut n = 0usize;
    while !rest.is_empty() {
        let bad = || Error::UnknownRev(rev.to_string());
        if let Some(r) = rest.strip_prefix('^') {
            n += 1;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('~') {
            let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            n += if digits == 0 {
                1
            } else {
                r[..digits].parse::<usize>().map_err(|_| bad())?
            };
            rest = &r[digits..];
        } else {
            return Err(bad());
        }
    }
    Ok((if base.is_empty() { "HEAD" } else { base }, n))
}

fn resolve_base(repo: &Repo, base: &str, rev: &str) -> Result<ObjectId> {
    if base == "HEAD" || base == "@" {
        return repo.head()?.commit.ok_or(Error::NoCommits);
    }
    for name in [format!("heads/{base}"), format!("tags/{base}")] {
        if let Some((_, id)) = repo.refs(&name)?.into_iter().find(|(n, _)| *n == name) {
            return Ok(id);
        }
    }
    if base.len() >= 4 && base.len() <= 64 && base.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = base.to_ascii_lowercase();
        let matches: Vec<ObjectId> = repo
            .store()
            .list_prefix(&prefix)?
            .into_iter()
            // The magic is checked first, so a prefix that names a big blob costs a 5-byte
            // read, not a read and hash of the whole file.
            .filter(|id| looks_like_commit(repo, id) && repo.read_commit(id).is_ok())
            .collect();
        return match matches.len() {
            1 => Ok(matches[0]),
            0 => Err(Error::UnknownRev(rev.to_string())),
            count => Err(Error::AmbiguousRev {
                rev: rev.to_string(),
                count,
            }),
        };
    }
    Err(Error::UnknownRev(rev.to_string()))
}

/// Whether the stored object `id` starts with a commit's magic (`LODC` 0x01 or 0x02): a cheap test
/// that reads 5 bytes, before the whole object is read and checked.
pub(crate) fn looks_like_commit(repo: &Repo, id: &ObjectId) -> bool {
    use std::io::Read;
    let Ok(f) = repo.store().reader(id) else {
        return false;
    };
    let mut magic = [0u8; 5];
    f.take(5).read_exact(&mut magic).is_ok() && crate::object::is_commit_magic(&magic)
}

/// A commit as `log` and `show` print it.
#[derive(Debug, serde::Serialize)]
pub struct CommitInfo {
    pub id: String,
    pub tree: String,
    pub parents: Vec<String>,
    pub dataset: String,
    /// The author's device key, hex.
    pub author: String,
    /// Who the author claims to be (name, email, ORCID iD), when the commit records it: a
    /// claim signed by the author's key, not a proof of identity.
    pub person: Option<crate::person::Person>,
    /// `Ana Lee <ana@lab.org> (604a738c)`, or the key when no person is recorded.
    pub author_label: String,
    pub time: i64,
    pub message: String,
    pub metadata: Metadata,
    pub signature_valid: bool,
}

impl CommitInfo {
    fn new(id: ObjectId, c: &Commit) -> CommitInfo {
        CommitInfo {
            id: id.to_hex(),
            tree: c.body.tree.to_hex(),
            parents: c.body.parents.iter().map(ObjectId::to_hex).collect(),
            dataset: hex::encode(c.body.dataset),
            author: hex::encode(c.body.author),
            person: c.body.person.clone(),
            author_label: crate::person::who(c.body.person.as_ref(), &c.body.author),
            time: c.body.time,
            message: c.body.message.clone(),
            metadata: c.body.metadata.clone(),
            signature_valid: c.verify().is_ok(),
        }
    }
}

/// Lists commits from `rev` (default HEAD) along first parents, newest first.
pub fn log(repo: &Repo, rev: Option<&str>, limit: Option<usize>) -> Result<Vec<CommitInfo>> {
    let mut next = match rev {
        Some(r) => Some(resolve(repo, r)?),
        None => repo.head()?.commit,
    };
    let mut out = Vec::new();
    while let Some(id) = next {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let c = repo.read_commit(&id)?;
        next = c.body.parents.first().copied();
        out.push(CommitInfo::new(id, &c));
    }
    Ok(out)
}

/// What `show` prints: the dataset, and the commit when there is one.
#[derive(Debug, serde::Serialize)]
pub struct ShowReport {
    pub dataset: String,
    pub commit: Option<CommitInfo>,
    pub files: u64,
    pub bytes: u64,
    /// Changes against the first parent.
    pub changes: Vec<Change>,
}

/// Shows a commit (default HEAD) and the dataset id.
pub fn show(repo: &Repo, rev: Option<&str>) -> Result<ShowReport> {
    let dataset = key_to_hex(&repo.dataset_id()?);
    let id = match rev {
        Some(r) => Some(resolve(repo, r)?),
        None => repo.head()?.commit,
    };
    let Some(id) = id else {
        return Ok(ShowReport {
            dataset,
            commit: None,
            files: 0,
            bytes: 0,
            changes: vec![],
        });
    };
    let c = repo.read_commit(&id)?;
    let flat = repo.flatten(&c.body.tree)?;
    let parent = repo.flatten_commit(c.body.parents.first())?;
    let files = flat.values().filter(|e| e.kind != EntryKind::Dir).count() as u64;
    let bytes = flat.values().map(|e| e.size).sum();
    Ok(ShowReport {
        dataset,
        commit: Some(CommitInfo::new(id, &c)),
        files,
        bytes,
        changes: compare(&parent, &flat),
    })
}

/// File-level diff: no revision = HEAD vs working tree; one = REV vs working tree; two =
/// REV vs REV.
pub fn diff(repo: &Repo, a: Option<&str>, b: Option<&str>) -> Result<Vec<Change>> {
    let old = match a {
        Some(r) => repo.flatten_commit(Some(&resolve(repo, r)?))?,
        None => repo.flatten_commit(repo.head()?.commit.as_ref())?,
    };
    let new = match b {
        Some(r) => repo.flatten_commit(Some(&resolve(repo, r)?))?,
        None => {
            let (index, t) = repo.load_index()?;
            scan_worktree(repo, &index, t)?.tracked(&index)
        }
    };
    Ok(compare(&old, &new))
}

/// Checks a tag name: letters, digits, `.`, `_`, `-`, `/`, not starting with `-` or `.`.
fn valid_tag(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '.', '/'])
        && !name.ends_with('/')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// Creates (or with `force` moves) a tag.
pub fn tag(repo: &Repo, name: &str, rev: Option<&str>, force: bool) -> Result<ObjectId> {
    if !valid_tag(name) || name == "HEAD" {
        return Err(Error::BadTagName(name.to_string()));
    }
    let _lock = repo.lock()?;
    let id = resolve(repo, rev.unwrap_or("HEAD"))?;
    let key = format!("tags/{name}");
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    {
        let mut t = tx.open_table(REFS)?;
        if t.get(key.as_str())?.is_some() && !force {
            return Err(Error::TagExists(name.to_string()));
        }
        t.insert(key.as_str(), id.to_hex().as_str())?;
    }
    tx.commit()?;
    Ok(id)
}

/// Deletes a tag.
pub fn delete_tag(repo: &Repo, name: &str) -> Result<()> {
    let _lock = repo.lock()?;
    let key = format!("tags/{name}");
    let db = repo.db()?;
    let tx = db.db.begin_write()?;
    let existed = tx.open_table(REFS)?.remove(key.as_str())?.is_some();
    if !existed {
        return Err(Error::UnknownRev(name.to_string()));
    }
    tx.commit()?;
    Ok(())
}

/// Lists tags and the commits they name.
pub fn tags(repo: &Repo) -> Result<Vec<(String, ObjectId)>> {
    Ok(repo
        .refs("tags/")?
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("tags/").to_string(), v))
        .collect())
}

/// One listed path.
#[derive(Debug, serde::Serialize)]
pub struct LsEntry {
    pub path: String,
    pub kind: &'static str,
    pub size: u64,
    /// BLAKE3 of the bytes (what `b3sum` prints for a file).
    pub id: String,
}

/// Lists the paths of a revision under `prefix`.
pub fn ls(repo: &Repo, rev: Option<&str>, prefix: &str) -> Result<Vec<LsEntry>> {
    let id = resolve(repo, rev.unwrap_or("HEAD"))?;
    let flat = repo.flatten_commit(Some(&id))?;
    let out: Vec<LsEntry> = flat
        .into_iter()
        .filter(|(p, _)| under(p, prefix))
        .map(|(path, e)| LsEntry {
            path,
            kind: e.kind.as_str(),
            size: e.size,
            id: e.id.to_hex(),
        })
        .collect();
    if out.is_empty() && !prefix.is_empty() {
        return Err(Error::PathNotInRev {
            path: prefix.to_string(),
            rev: rev.unwrap_or("HEAD").into(),
        });
    }
    Ok(out)
}

/// Looks up one path of a revision.
pub fn lookup(repo: &Repo, rev: &str, path: &str) -> Result<FlatEntry> {
    let id = resolve(repo, rev)?;
    let flat: BTreeMap<String, FlatEntry> = repo.flatten_commit(Some(&id))?;
    flat.get(path).copied().ok_or_else(|| {
        if flat.keys().any(|k| under(k, path)) {
            Error::NotAFile {
                path: path.into(),
                rev: rev.into(),
                kind: "directory",
            }
        } else {
            Error::PathNotInRev {
                path: path.into(),
                rev: rev.into(),
            }
        }
    })
}

/// Streams a file of a revision to `out`, after checking its hash, so that no unverified
/// byte is written.
pub fn cat(repo: &Repo, rev: &str, path: &str, out: &mut dyn Write) -> Result<u64> {
    let e = lookup(repo, rev, path)?;
    if e.kind == EntryKind::Dir {
        return Err(Error::NotAFile {
            path: path.into(),
            rev: rev.into(),
            kind: "directory",
        });
    }
    let (got, _) = repo.store().rehash(&e.id)?;
    if got != e.id {
        return Err(Error::ObjectCorrupt {
            id: e.id,
            path: Some(path.to_string()),
        });
    }
    let mut f = repo.store().reader(&e.id)?;
    io::copy(&mut f, out).map_err(|err| Error::io("cannot write", "stdout", err))
}

/// Reports whether `ancestor` is reachable from `from` through parents.
pub fn is_ancestor(repo: &Repo, ancestor: &ObjectId, from: &ObjectId) -> Result<bool> {
    let mut stack = vec![*from];
    let mut seen = std::collections::HashSet::new();
    while let Some(c) = stack.pop() {
        if c == *ancestor {
            return Ok(true);
        }
        if seen.insert(c) {
            stack.extend(repo.read_commit(&c)?.body.parents);
        }
    }
    Ok(false)
}
