//! Walking the working tree: a parallel walk (the `ignore` crate, ripgrep's walker) that
//! honours `.lodeignore` files in gitignore syntax, never follows symlinks, skips `.lode`,
//! and visits only the requested paths.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

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

/// Walks `targets` (repository paths; "" is everything) in parallel and calls `f` for each
/// path below them (not for the root itself). Stops at the first error `f` returns.
pub fn walk<F>(root: &Path, targets: &[String], f: F) -> Result<()>
where
    F: Fn(WalkItem) -> Result<()> + Sync,
{
    let dot = root.join(".lode");
    let targets_owned: Vec<String> = targets.to_vec();
    let root_owned = root.to_path_buf();
    let mut builder = WalkBuilder::new(root);
    builder
        .standard_filters(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .follow_links(false)
        .threads(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(8),
        )
        .filter_entry(move |e| {
            let p = e.path();
            if p == dot {
                return false;
            }
            if targets_owned.iter().any(String::is_empty) {
                return true;
            }
            let Ok(rel) = p.strip_prefix(&root_owned) else {
                return false;
            };
            let Some(rel) = rel.to_str() else { return true };
            rel.is_empty() || targets_owned.iter().any(|t| under(rel, t) || under(t, rel))
        });
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let in_scope = |rel: &str| targets.iter().any(|t| under(rel, t));
    builder.build_parallel().run(|| {
        Box::new(|res| {
            let fail = |e: Error| {
                let mut slot = first_err.lock().expect("no panics while held");
                slot.get_or_insert(e);
                WalkState::Quit
            };
            let entry = match res {
                Ok(e) => e,
                Err(e) => {
                    let path = match &e {
                        ignore::Error::WithPath { path, .. } => path.clone(),
                        _ => root.to_path_buf(),
                    };
                    let io = e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("walk error"));
                    return fail(Error::io("cannot read", path, io));
                }
            };
            if entry.depth() == 0 {
                return WalkState::Continue;
            }
            let rel = match rel_path(root, entry.path()) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            if !in_scope(&rel) {
                return WalkState::Continue;
            }
            let meta = match fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) => return fail(Error::io("cannot stat", entry.path(), e)),
            };
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                WalkKind::Symlink
            } else if ft.is_dir() {
                WalkKind::Dir
            } else if ft.is_file() {
                WalkKind::File
            } else {
                WalkKind::Other
            };
            let item = WalkItem {
                rel,
                abs: entry.into_path(),
                kind,
                meta,
            };
            match f(item) {
                Ok(()) => WalkState::Continue,
                Err(e) => fail(e),
            }
        })
    });
    match first_err.into_inner().expect("walker threads have ended") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
