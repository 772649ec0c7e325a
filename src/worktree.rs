//! Walking the working tree: a parallel walk that honours `.lodeignore` files in gitignore
//! syntax (matched by the `ignore` crate, ripgrep's), never follows symlinks, skips `.lode` at any depth and in every spelling a file system resolves to it,
//! and visits only the requested paths.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use crate::error::{Error, Result};
use crate::store::Stat;

/// The name of the per-directory ignore file.
pub const IGNORE_FILE: &str = ".lodeignore";

/// What a walked path is (from `lstat`, links are not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkKind {
    File,
    Symlink,
    Dir,
    Other,
}

impl WalkKind {
    /// Classifies `lstat` metadata.
    pub fn of(m: &fs::Metadata) -> WalkKind {
        WalkKind::of_mode(m.mode())
    }

    /// Classifies the `st_mode` of an `lstat`.
    pub fn of_mode(mode: u32) -> WalkKind {
        match mode & 0o170_000 {
            0o120_000 => WalkKind::Symlink,
            0o040_000 => WalkKind::Dir,
            0o100_000 => WalkKind::File,
            _ => WalkKind::Other,
        }
    }
}

/// What an `lstat` of a path told: its kind and the fields of the stat cache.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub kind: WalkKind,
    pub stat: Stat,
}

impl Meta {
    /// From `std`'s metadata of an `lstat`.
    pub fn of(m: &fs::Metadata) -> Meta {
        Meta {
            kind: WalkKind::of(m),
            stat: Stat::of(m),
        }
    }

    /// From the `lstat` the walk makes relative to its directory's handle.
    fn of_raw(st: &rustix::fs::Stat) -> Meta {
        let stat = Stat {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
            ino: st.st_ino,
            mode: st.st_mode,
        };
        Meta {
            kind: WalkKind::of_mode(stat.mode),
            stat,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == WalkKind::Dir
    }
}

/// One path met by the walk.
pub struct WalkItem {
    /// `/`-separated path relative to the repository root.
    pub rel: String,
    pub abs: PathBuf,
    pub meta: Meta,
}

/// Converts an absolute path below `root` to a repository path.
pub fn rel_path(root: &Path, abs: &Path) -> Result<String> {
    let rel = abs.strip_prefix(root).map_err(|_| Error::OutsideRepo {
        path: abs.to_path_buf(),
        root: root.to_path_buf(),
    })?;
    let s = rel
        .to_str()
        .ok_or_else(|| Error::NonUtf8Name(abs.to_path_buf()))?;
    Ok(s.to_string())
}

/// Reports whether `path` equals `prefix` or lies below it (`prefix` "" is the root).
pub fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// One directory waiting to be read, with the ignore rules that apply inside it.
struct Job {
    dir: PathBuf,
    rel: String,
    ignores: Arc<Vec<Gitignore>>,
    /// A part of a large directory already listed: the listing and the range of it this
    /// job handles. `None`: the whole directory, to be listed.
    part: Option<(Arc<Listing>, std::ops::Range<usize>)>,
}

/// A directory with more entries than this is handled in parts of this many, by all the
/// walking threads (one flat directory of a million files is walked in parallel too).
const PART: usize = 4096;

struct Queue {
    jobs: Vec<Job>,
    active: usize,
    error: Option<Error>,
}

/// The names in one directory, in name order, held compactly (all names in one buffer:
/// a flat directory of a million files costs a few tens of MiB, not a `DirEntry` and two
/// name allocations each), with the open directory that entries are `lstat`ed through.
struct Listing {
    dir: rustix::fs::Dir,
    names: Vec<u8>,
    /// Each entry's name (`names[start..end]`) and whether `readdir` called it a
    /// directory (`None`: the file system did not say).
    spans: Vec<(u32, u32, Option<bool>)>,
}

impl Listing {
    /// Lists directory `path`; a symlink in its place is followed only when `follow` (the
    /// walk's root), never below, where `lstat` said it was a directory.
    fn read(path: &Path, follow: bool) -> Result<Listing> {
        use rustix::fs::{FileType, Mode, OFlags};
        let err = |e: rustix::io::Errno| Error::io("cannot read", path, std::io::Error::from(e));
        let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(err)?;
        let mut dir = rustix::fs::Dir::new(fd).map_err(err)?;
        let (mut names, mut spans) = (Vec::new(), Vec::new());
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let start = names.len();
            names.extend_from_slice(name);
            let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(names.len())) else {
                return Err(Error::Other(format!(
                    "{}: too many names in one directory to walk",
                    path.display()
                )));
            };
            let is_dir = match entry.file_type() {
                FileType::Unknown => None,
                t => Some(t == FileType::Directory),
            };
            spans.push((start, end, is_dir));
        }
        spans.sort_unstable_by(|a, b| {
            names[a.0 as usize..a.1 as usize].cmp(&names[b.0 as usize..b.1 as usize])
        });
        spans.shrink_to_fit();
        names.shrink_to_fit();
        Ok(Listing { dir, names, spans })
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn name(&self, i: usize) -> &[u8] {
        let (start, end, _) = self.spans[i];
        &self.names[start as usize..end as usize]
    }

    /// Whether the directory has an entry named `name` (the listing is sorted).
    fn contains(&self, name: &[u8]) -> bool {
        self.spans
            .binary_search_by(|&(start, end, _)| self.names[start as usize..end as usize].cmp(name))
            .is_ok()
    }

    /// Whether `readdir` called entry `i` a directory, if it said.
    fn is_dir(&self, i: usize) -> Option<bool> {
        self.spans[i].2
    }

    /// `lstat` of the entry named `name`, relative to the directory's handle.
    fn lstat(&self, name: &str, abs: &Path) -> Result<Meta> {
        let err = |e: rustix::io::Errno| Error::io("cannot stat", abs, std::io::Error::from(e));
        let fd = self.dir.fd().map_err(err)?;
        let st =
            rustix::fs::statat(fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
        Ok(Meta::of_raw(&st))
    }
}

/// Walks `targets` (repository paths; "" is everything) in parallel and calls `f` for each
/// path below them (not for the root itself). Stops at the first error `f` returns.
///
/// Entries are stat'ed relative to their directory's open handle (`fstatat`), not by full
/// path, which keeps the kernel from walking every path from the root: on 100,000 files
/// this is most of the cost of `status`.
///
/// Temp files and staging directories of lode itself (see [`crate::leftover`]) are skipped,
/// never handed to `f`: a command never stages them.
pub fn walk<F>(root: &Path, targets: &[String], f: F) -> Result<()>
where
    F: Fn(WalkItem) -> Result<()> + Sync,
{
    walk_with_leftovers(root, targets, f, |_| {})
}

/// Like [`walk`], handing lode's own temp files and staging directories met on the way to
/// `leftover` instead (a staging directory is not descended into).
pub fn walk_with_leftovers<F, L>(root: &Path, targets: &[String], f: F, leftover: L) -> Result<()>
where
    F: Fn(WalkItem) -> Result<()> + Sync,
    L: Fn(WalkItem) + Sync,
{
    let all = targets.iter().any(String::is_empty);
    let in_scope = |rel: &str| all || targets.iter().any(|t| under(rel, t));
    let descend = |rel: &str| all || targets.iter().any(|t| under(rel, t) || under(t, rel));
    let queue = Mutex::new(Queue {
        jobs: vec![Job {
            dir: root.to_path_buf(),
            rel: String::new(),
            ignores: Arc::new(vec![]),
            part: None,
        }],
        active: 0,
        error: None,
    });
    let wake = Condvar::new();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let process = |job: Job| -> Result<Vec<Job>> {
        let mut sub = Vec::new();
        let (listing, range, ignores) = match job.part {
            Some((listing, range)) => (listing, range, job.ignores.clone()),
            None => {
                let listing = Arc::new(Listing::read(&job.dir, job.rel.is_empty())?);
                let has_ignore_file = listing.contains(IGNORE_FILE.as_bytes());
                let ignores = with_ignore_file(&job.dir, &job.ignores, has_ignore_file)?;
                if listing.len() > PART {
                    // In parts, for every walking thread to take.
                    let parts = (0..listing.len()).step_by(PART).map(|at| Job {
                        dir: job.dir.clone(),
                        rel: job.rel.clone(),
                        ignores: ignores.clone(),
                        part: Some((listing.clone(), at..(at + PART).min(listing.len()))),
                    });
                    return Ok(parts.collect());
                }
                let all = 0..listing.len();
                (listing, all, ignores)
            }
        };
        for i in range {
            let name = listing.name(i);
            let Ok(name) = std::str::from_utf8(name) else {
                use std::os::unix::ffi::OsStrExt;
                let name = std::ffi::OsStr::from_bytes(name);
                return Err(Error::NonUtf8Name(job.dir.join(name)));
            };
            // `.lode` (in any spelling a file system resolves to it) is a control directory:
            // the repository's own at the top, a nested repository's below. Never recorded.
            if crate::object::is_control_name(name) {
                continue;
            }
            let rel = if job.rel.is_empty() {
                name.to_string()
            } else {
                format!("{}/{name}", job.rel)
            };
            if !descend(&rel) {
                continue;
            }
            let abs = job.dir.join(name);
            // An ignored entry is not `lstat`ed when `readdir` said what it is.
            let (is_dir, meta) = match listing.is_dir(i) {
                Some(is_dir) => (is_dir, None),
                None => {
                    let meta = listing.lstat(name, &abs)?;
                    (meta.is_dir(), Some(meta))
                }
            };
            if ignored(&ignores, &abs, is_dir) {
                continue;
            }
            let meta = match meta {
                Some(meta) => meta,
                None => listing.lstat(name, &abs)?,
            };
            if crate::leftover::parse(name).is_some() {
                if in_scope(&rel) {
                    leftover(WalkItem { rel, abs, meta });
                }
                continue;
            }
            if meta.is_dir() {
                sub.push(Job {
                    dir: abs.clone(),
                    rel: rel.clone(),
                    ignores: ignores.clone(),
                    part: None,
                });
            }
            if in_scope(&rel) {
                f(WalkItem { rel, abs, meta })?;
            }
        }
        Ok(sub)
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let job = {
                    let mut q = queue.lock().expect("no panic while held");
                    loop {
                        if q.error.is_some() || (q.jobs.is_empty() && q.active == 0) {
                            wake.notify_all();
                            return;
                        }
                        if let Some(job) = q.jobs.pop() {
                            q.active += 1;
                            break job;
                        }
                        q = wake.wait(q).expect("no panic while held");
                    }
                };
                let result = process(job);
                let mut q = queue.lock().expect("no panic while held");
                q.active -= 1;
                match result {
                    Ok(jobs) => q.jobs.extend(jobs),
                    Err(e) => {
                        q.error.get_or_insert(e);
                    }
                }
                wake.notify_all();
            });
        }
    });
    match queue.into_inner().expect("walkers have ended").error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The ignore files that apply in directory `dir`: `ignores`, and its own when it has one.
fn with_ignore_file(
    dir: &Path,
    ignores: &Arc<Vec<Gitignore>>,
    has_one: bool,
) -> Result<Arc<Vec<Gitignore>>> {
    if !has_one {
        return Ok(ignores.clone());
    }
    let mut b = GitignoreBuilder::new(dir);
    let file = dir.join(IGNORE_FILE);
    if let Some(e) = b.add(&file) {
        return Err(Error::Other(format!("cannot read {}: {e}", file.display())));
    }
    let g = b
        .build()
        .map_err(|e| Error::Other(format!("bad pattern in {}: {e}", file.display())))?;
    let mut v = (**ignores).clone();
    v.push(g);
    Ok(Arc::new(v))
}

/// Applies ignore files from the innermost outwards; the first that decides wins.
fn ignored(ignores: &[Gitignore], path: &Path, is_dir: bool) -> bool {
    for g in ignores.iter().rev() {
        match g.matched(path, is_dir) {
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
            Match::None => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walks_lstat_gives_what_std_gives() {
        // The stat cache compares what the walk saw with what an `lstat` through `std` saw
        // (named paths, older index entries): the two must agree field for field.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join("file"), b"some bytes").unwrap();
        std::os::unix::fs::symlink("file", p.join("link")).unwrap();
        fs::create_dir(p.join("sub")).unwrap();
        let listing = Listing::read(p, true).unwrap();
        for (name, kind) in [
            ("file", WalkKind::File),
            ("link", WalkKind::Symlink),
            ("sub", WalkKind::Dir),
        ] {
            let abs = p.join(name);
            let ours = listing.lstat(name, &abs).unwrap();
            let std = Meta::of(&fs::symlink_metadata(&abs).unwrap());
            assert_eq!(ours.kind, kind);
            assert_eq!((ours.kind, ours.stat), (std.kind, std.stat), "{name}");
        }
        // Listed in name order, `.` and `..` left out.
        let names: Vec<&[u8]> = (0..listing.len()).map(|i| listing.name(i)).collect();
        assert_eq!(names, [&b"file"[..], b"link", b"sub"]);
    }

    #[test]
    fn a_large_directory_is_walked_in_parts_once_each_with_its_ignore_file() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        fs::create_dir_all(big.join("sub")).unwrap();
        let n = 2 * PART + 5;
        let mut want = vec!["big".to_string(), "big/.lodeignore".to_string()];
        for i in 0..n {
            let name = format!("f{i:05}");
            fs::write(big.join(&name), b"x").unwrap();
            want.push(format!("big/{name}"));
            if i % 1000 == 0 {
                fs::write(big.join(format!("{name}.skip")), b"x").unwrap();
            }
        }
        fs::write(big.join(".lodeignore"), "*.skip\n").unwrap();
        fs::write(big.join("sub/inner"), b"x").unwrap();
        fs::write(big.join("sub/inner.skip"), b"x").unwrap();
        want.extend(["big/sub".to_string(), "big/sub/inner".to_string()]);
        let seen = Mutex::new(Vec::new());
        walk(dir.path(), &[String::new()], |item| {
            seen.lock().unwrap().push(item.rel);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        want.sort();
        assert_eq!(seen.len(), want.len(), "every path once, none ignored");
        assert!(seen == want);
    }
}
