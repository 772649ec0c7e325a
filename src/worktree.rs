//! Walking the working tree: a parallel walk that honours `.lodeignore` files in gitignore
//! syntax (matched by the `ignore` crate, ripgrep's), never follows symlinks, skips `.lode` at any depth and in every spelling a file system resolves to it,
//! and visits only the requested paths.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use crate::error::{Error, Result};

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
        let ft = m.file_type();
        if ft.is_symlink() {
            WalkKind::Symlink
        } else if ft.is_dir() {
            WalkKind::Dir
        } else if ft.is_file() {
            WalkKind::File
        } else {
            WalkKind::Other
        }
    }
}

/// One path met by the walk.
pub struct WalkItem {
    /// `/`-separated path relative to the repository root.
    pub rel: String,
    pub abs: PathBuf,
    pub kind: WalkKind,
    pub meta: fs::Metadata,
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
    /// A part of a large directory already read (sorted by name). `None`: the whole
    /// directory, to be read.
    part: Option<Vec<Entry>>,
}

/// A directory entry and its name (the sort key).
type Entry = (std::ffi::OsString, fs::DirEntry);

/// A directory with more entries than this is read and handled in parts of this many: the
/// walk holds a few parts of it at a time, not all its entries (a flat directory of a
/// million files costs no more memory than a thousand directories of a thousand), and the
/// parts go to every walking thread.
const PART: usize = 4096;

struct Queue {
    jobs: Vec<Job>,
    active: usize,
    error: Option<Error>,
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
    // The entries of one directory (or a part of one), in name order.
    let handle =
        |dir: &Job, entries: &[Entry], ignores: &Arc<Vec<Gitignore>>| -> Result<Vec<Job>> {
            let mut sub = Vec::new();
            for (name, entry) in entries {
                let Some(name) = name.to_str() else {
                    return Err(Error::NonUtf8Name(entry.path()));
                };
                // `.lode` (in any spelling a file system resolves to it) is a control directory:
                // the repository's own at the top, a nested repository's below. Never recorded.
                if crate::object::is_control_name(name) {
                    continue;
                }
                let rel = if dir.rel.is_empty() {
                    name.to_string()
                } else {
                    format!("{}/{name}", dir.rel)
                };
                if !descend(&rel) {
                    continue;
                }
                let abs = entry.path();
                let is_dir = entry
                    .file_type()
                    .map_err(|e| Error::io("cannot stat", &abs, e))?
                    .is_dir();
                if ignored(ignores, &abs, is_dir) {
                    continue;
                }
                let meta = entry
                    .metadata()
                    .map_err(|e| Error::io("cannot stat", &abs, e))?;
                let kind = WalkKind::of(&meta);
                if crate::leftover::parse(name).is_some() {
                    if in_scope(&rel) {
                        leftover(WalkItem {
                            rel,
                            abs,
                            kind,
                            meta,
                        });
                    }
                    continue;
                }
                if kind == WalkKind::Dir {
                    sub.push(Job {
                        dir: abs.clone(),
                        rel: rel.clone(),
                        ignores: ignores.clone(),
                        part: None,
                    });
                }
                if in_scope(&rel) {
                    f(WalkItem {
                        rel,
                        abs,
                        kind,
                        meta,
                    })?;
                }
            }
            Ok(sub)
        };
    // Queues a part of a large directory for another thread, unless enough work waits
    // already (then the reading thread handles it itself: the parts held stay few).
    let hand_off = |part: Job| -> Option<Job> {
        let mut q = queue.lock().expect("no panic while held");
        if q.jobs.len() >= threads {
            return Some(part);
        }
        q.jobs.push(part);
        wake.notify_one();
        None
    };
    let process = |job: Job| -> Result<Vec<Job>> {
        if let Some(part) = &job.part {
            return handle(&job, part, &job.ignores);
        }
        let read_err = |e| Error::io("cannot read", &job.dir, e);
        let mut dir = fs::read_dir(&job.dir).map_err(read_err)?;
        let mut entries = read_some(&mut dir, &job.dir, PART + 1)?;
        if entries.len() <= PART {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let has_ignore_file = entries.iter().any(|(name, _)| name == IGNORE_FILE);
            let ignores = with_ignore_file(&job.dir, &job.ignores, has_ignore_file)?;
            return handle(&job, &entries, &ignores);
        }
        // A large directory: its ignore file looked up by name (it may come in any part),
        // then part after part, each sorted, handed to other threads or handled here.
        let has_ignore_file = fs::symlink_metadata(job.dir.join(IGNORE_FILE)).is_ok();
        let ignores = with_ignore_file(&job.dir, &job.ignores, has_ignore_file)?;
        let mut sub = Vec::new();
        while !entries.is_empty() {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let part = Job {
                dir: job.dir.clone(),
                rel: job.rel.clone(),
                ignores: ignores.clone(),
                part: Some(entries),
            };
            if let Some(part) = hand_off(part) {
                let entries = part.part.as_deref().unwrap_or_default();
                sub.extend(handle(&part, entries, &ignores)?);
            }
            entries = read_some(&mut dir, &job.dir, PART)?;
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

/// Up to `n` more entries of directory `dir` (read through `rd`), with their names.
fn read_some(rd: &mut fs::ReadDir, dir: &Path, n: usize) -> Result<Vec<Entry>> {
    rd.by_ref()
        .take(n)
        .map(|e| e.map(|e| (e.file_name(), e)))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io("cannot read", dir, e))
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
