//! Temp files and directories that a killed lode can leave behind, and how the next command
//! recognises and removes them.
//!
//! Everything lode writes under a temporary name carries the id of the process that owns it,
//! so a later command can tell a leftover (its owner is dead) from work in progress:
//!
//! - `.lode/tmp/<kind>-<pid>-<tail>`: objects being written (`object-`, `fetch-`) and
//!   checkout's files (`checkout-`) before they are renamed into place; likewise `get-` in
//!   `DIR/.lode-get/out`. Removed by the next command that takes the writer lock (and by the
//!   next get) once their process is gone ([`clean_tmp_dir`]).
//! - `.lode-tmp-<pid>-<n>` beside a destination: only where the destination lies on another
//!   file system than `.lode` (a rename cannot cross it). Found by the walk of the working
//!   tree ([`parse`]) and removed by checkout and `gc`; `status` lists those it cannot remove.
//! - `.lode-init-<pid>-XXXXXX` in the directory of a repository being created: the staging
//!   directory of `.lode` before its rename. Removed by the next `init` or `clone` there.
//!
//! Older lode versions named them `.lode-tmp-XXXXXX` and `.lode-init-XXXXXX` (six random
//! characters, no pid): those are removed only by a command holding the writer lock (no live
//! writer can own them then) or, for a staging directory, once it is a minute old.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The prefix of a temp file beside its destination in the working tree.
pub const TMP_PREFIX: &str = ".lode-tmp-";
/// The prefix of the staging directory of a `.lode` being created.
pub const INIT_PREFIX: &str = ".lode-init-";

/// What kind of leftover a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A temp file (`.lode-tmp-…`).
    Tmp,
    /// A staging directory (`.lode-init-…`).
    Init,
}

/// Who owns a temp name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The process with this id wrote it.
    Pid(u32),
    /// An older lode wrote it (no pid in the name).
    Unknown,
}

impl Owner {
    /// Reports whether a live process may own the name: its pid runs (an unknown owner may
    /// be alive).
    pub fn maybe_alive(self) -> bool {
        match self {
            Owner::Pid(pid) => pid_alive(pid),
            Owner::Unknown => true,
        }
    }
}

/// Reports whether process `pid` exists (signal 0; a process of another user exists too).
pub fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(p),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Parses a file name lode gives temp files: `.lode-tmp-<pid>-<n>`, `.lode-init-<pid>-<x>`,
/// or an older lode's `.lode-tmp-XXXXXX` / `.lode-init-XXXXXX`. `None` for any other name.
pub fn parse(name: &str) -> Option<(Kind, Owner)> {
    let (kind, rest) = if let Some(r) = name.strip_prefix(TMP_PREFIX) {
        (Kind::Tmp, r)
    } else if let Some(r) = name.strip_prefix(INIT_PREFIX) {
        (Kind::Init, r)
    } else {
        return None;
    };
    if let Some((pid, tail)) = rest.split_once('-') {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let tail_ok = match kind {
            Kind::Tmp => digits(tail),
            Kind::Init => !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_alphanumeric()),
        };
        if digits(pid) && tail_ok {
            return pid.parse().ok().map(|p| (kind, Owner::Pid(p)));
        }
        return None;
    }
    (rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some((kind, Owner::Unknown))
}

fn next() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh temp path beside a destination in `dir`: `.lode-tmp-<pid>-<n>`.
pub fn beside(dir: &Path) -> PathBuf {
    dir.join(format!("{TMP_PREFIX}{}-{}", std::process::id(), next()))
}

/// A fresh temp path in `.lode/tmp` (`tmp_dir`) for a file of `kind` ("checkout", "get"):
/// `<kind>-<pid>-<n>`.
pub fn in_tmp_dir(tmp_dir: &Path, kind: &str) -> PathBuf {
    tmp_dir.join(format!("{kind}-{}-{}", std::process::id(), next()))
}

/// The owner of a `.lode/tmp` entry named `<kind>-<pid>-<tail>` (`checkout-…`, `get-…`,
/// `object-…`, `fetch-…`; the tail alphanumeric). `None` for other names, which only `gc`
/// removes.
fn tmp_dir_owner(name: &str) -> Option<u32> {
    let (kind, rest) = name.split_once('-')?;
    let (pid, tail) = rest.split_once('-')?;
    let ok = !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase())
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| pid.parse().ok()).flatten()
}

/// Removes the `<kind>-<pid>-<tail>` files of `tmp_dir` whose process is gone. Returns
/// (entries, bytes) removed.
pub fn clean_tmp_dir(tmp_dir: &Path) -> (u64, u64) {
    let mut out = (0, 0);
    let Ok(rd) = fs::read_dir(tmp_dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(tmp_dir_owner) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        if fs::remove_file(e.path()).is_ok() {
            out.0 += 1;
            out.1 += len;
        }
    }
    out
}

/// Removes the leftover temp files `.lode-tmp-<pid>-<n>` of dead processes directly in
/// `dir` (not below). Returns how many.
pub fn clean_dir(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let dead = matches!(
            name.to_str().and_then(parse),
            Some((Kind::Tmp, Owner::Pid(pid))) if !pid_alive(pid)
        );
        if dead && fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Removes the `.lode-init-…` staging directories left in `dir` by a killed `init` or
/// `clone`: those of dead processes, and an older lode's once a minute old (a staging
/// directory lives for milliseconds). Nothing in one was verified data: the fetch of a
/// clone starts after `.lode` is in place.
pub fn clean_init_dirs(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let stale = match name.to_str().and_then(parse) {
            Some((Kind::Init, Owner::Pid(pid))) => !pid_alive(pid),
            Some((Kind::Init, Owner::Unknown)) => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(60)),
            _ => false,
        };
        if stale && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// For tests only: with `LODE_TEST_SLOW_PLACE_MS` set, checkout and get wait that long
/// before renaming each file into place, so that a test's kill -9 can land anywhere in their
/// run reliably. Unset (always, outside tests) it costs one environment lookup per process.
pub fn test_slowdown() {
    static DELAY: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        std::env::var("LODE_TEST_SLOW_PLACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(d) = delay {
        std::thread::sleep(*d);
    }
}

/// A leftover met by the walk of a working tree.
#[derive(Clone, Debug)]
pub struct Leftover {
    /// Repository path.
    pub rel: String,
    pub abs: PathBuf,
    pub kind: Kind,
    pub owner: Owner,
    pub is_dir: bool,
}

impl Leftover {
    /// Removes the leftover when no live process can own it: its pid is dead, or (with
    /// `locked`, the writer lock held) an older lode wrote it. A leftover inside a nested
    /// repository (a directory below `root` holding `.lode`) belongs to that repository and
    /// is kept. Returns the bytes freed, or `None` when it stays.
    pub fn remove(&self, root: &Path, locked: bool) -> Option<u64> {
        let ownerless = match self.owner {
            Owner::Pid(pid) => !pid_alive(pid),
            Owner::Unknown => locked,
        };
        if !ownerless || in_nested_repo(root, &self.rel) {
            return None;
        }
        let meta = fs::symlink_metadata(&self.abs).ok()?;
        let removed = if self.is_dir {
            // Only a directory lode stages (`.lode-init-…`) is removed whole.
            self.kind == Kind::Init && fs::remove_dir_all(&self.abs).is_ok()
        } else {
            fs::remove_file(&self.abs).is_ok()
        };
        removed.then_some(if self.is_dir { 0 } else { meta.len() })
    }

    /// Reports whether a live process may still be writing it (then it is no leftover yet).
    pub fn in_use(&self) -> bool {
        matches!(self.owner, Owner::Pid(pid) if pid_alive(pid))
    }
}

/// Reports whether a directory between `root` (excluded) and `rel`'s parent holds `.lode`.
fn in_nested_repo(root: &Path, rel: &str) -> bool {
    let mut cur = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        cur.push(part);
        if cur.join(".lode").is_dir() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse(".lode-tmp-123-4"), Some((Kind::Tmp, Owner::Pid(123))));
        assert_eq!(parse(".lode-tmp-a1B2c3"), Some((Kind::Tmp, Owner::Unknown)));
        assert_eq!(
            parse(".lode-init-77-Ab3xYz"),
            Some((Kind::Init, Owner::Pid(77)))
        );
        assert_eq!(
            parse(".lode-init-Ab3xYz"),
            Some((Kind::Init, Owner::Unknown))
        );
        for other in [
            ".lode-tmp-",
            ".lode-tmp-abc",
            ".lode-tmp-notes.txt",
            ".lode-tmp-12-x",
            ".lode",
            "lode-tmp-123-4",
            ".lode-tmp-1234567",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
        assert_eq!(tmp_dir_owner("checkout-42-7"), Some(42));
        assert_eq!(tmp_dir_owner("object-42-aB3xYz"), Some(42));
        assert_eq!(tmp_dir_owner("fetch-42-0123abcdef"), Some(42));
        assert_eq!(tmp_dir_owner(".tmpAbc123"), None);
        assert_eq!(tmp_dir_owner("fetch-abcdef"), None);
        assert_eq!(tmp_dir_owner("object-x-abc"), None);
        let p = beside(Path::new("/x"));
        assert!(matches!(
            parse(p.file_name().unwrap().to_str().unwrap()),
            Some((Kind::Tmp, Owner::Pid(_)))
        ));
    }

    #[test]
    fn liveness() {
        assert!(pid_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid), "a reaped child is gone");
    }
}
