//! A per-user cache of fetched datasets for library users (the Python package): blobs in an
//! object store keyed by their BLAKE3 id, the listings of commits seen, and which commit each
//! revision named when it was last resolved. A second load of the same file is a lookup.
//!
//! ```text
//! CACHE/objects/ab/…               blobs, read-only, named by id (a `Store`)
//! CACHE/listings/DATASET/COMMIT    a commit's tree listing (JSON), written once
//! CACHE/revs/DATASET/HEX(REV)      the commit REV named when last resolved (`main` for none)
//! ```
//!
//! Which revisions resolve without asking a provider is the caller's policy (see
//! [`Cache::resolve`]); the cache only records what was verified.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::object::EntryKind;
use crate::store::Store;

use super::list::{holds, Entry, Listing};

/// The cache directory.
pub struct Cache {
    dir: PathBuf,
    store: Store,
}

impl Cache {
    /// Opens (creating) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<Cache> {
        let objects = dir.join("objects");
        let tmp = dir.join("tmp");
        for d in [&objects, &tmp] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("cannot create directory", d, e))?;
        }
        crate::leftover::clean_tmp_dir(&tmp);
        let store = Store::new(objects.clone(), tmp);
        if !objects.join("ff").is_dir() {
            store
                .create()
                .map_err(|e| Error::io("cannot create directory", &objects, e))?;
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            store,
        })
    }

    /// The blob store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn rev_file(&self, dataset: &[u8; 32], rev: Option<&str>) -> PathBuf {
        self.dir
            .join("revs")
            .join(hex::encode(dataset))
            .join(hex::encode(rev.unwrap_or("main")))
    }

    fn listing_file(&self, dataset: &[u8; 32], commit: &ObjectId) -> PathBuf {
        self.dir
            .join("listings")
            .join(hex::encode(dataset))
            .join(commit.to_hex())
    }

    /// The listing `rev` resolved to when last recorded, if both are still here. A full
    /// commit id needs no record: its listing is enough.
    pub fn resolve(&self, dataset: &[u8; 32], rev: Option<&str>) -> Option<Listing> {
        let commit = match rev.and_then(|r| r.parse::<ObjectId>().ok()) {
            Some(c) => c,
            None => std::fs::read_to_string(self.rev_file(dataset, rev))
                .ok()?
                .trim()
                .parse()
                .ok()?,
        };
        let text = std::fs::read(self.listing_file(dataset, &commit)).ok()?;
        let listing: Listing = serde_json::from_slice(&text).ok()?;
        (listing.commit == commit).then_some(listing)
    }

    /// Records `listing` and that `rev` resolved to it (best effort: a record that cannot
    /// be written only means the next load asks a provider again).
    pub fn record(&self, dataset: &[u8; 32], rev: Option<&str>, listing: &Listing) {
        let write = |path: PathBuf, data: &[u8]| {
            if let Some(d) = path.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            let tmp = crate::leftover::in_tmp_dir(self.store.tmp_dir(), "rec");
            if std::fs::write(&tmp, data).is_ok() && std::fs::rename(&tmp, &path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        };
        let file = self.listing_file(dataset, &listing.commit);
        if !file.exists() {
            if let Ok(json) = serde_json::to_vec(listing) {
                write(file, &json);
            }
        }
        write(
            self.rev_file(dataset, rev),
            listing.commit.to_hex().as_bytes(),
        );
    }

    /// Writes `entries` (files and symlinks whose blobs are in the cache) under `to`, each
    /// verified against its id while it is copied, through a temp name renamed into place.
    /// A file already holding the same bytes is left as it is; one holding other bytes is
    /// replaced only with `force`. Returns the written paths.
    pub fn export(&self, entries: &[&Entry], to: &Path, force: bool) -> Result<Vec<PathBuf>> {
        let differ: Vec<String> = entries
            .iter()
            .filter(|e| {
                let dest = to.join(&e.path);
                std::fs::symlink_metadata(&dest).is_ok() && !self.same(e, &dest)
            })
            .map(|e| e.path.clone())
            .collect();
        if !differ.is_empty() && !force {
            return Err(Error::WouldOverwrite(differ));
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if !e.path.split('/').all(crate::object::valid_name) {
                return Err(Error::Other(format!(
                    "the tree names the path {:?}",
                    e.path
                )));
            }
            let dest = to.join(&e.path);
            out.push(dest.clone());
            if self.same(e, &dest) {
                continue;
            }
            let parent = dest.parent().unwrap_or(to);
            std::fs::create_dir_all(parent)
                .map_err(|err| Error::io("cannot create directory", parent, err))?;
            let tmp = crate::leftover::beside(parent);
            let written = match e.kind {
                EntryKind::Symlink => {
                    let target = self.store.read_verified(&e.id, 1 << 20)?;
                    if !super::walk::link_stays_inside(&e.path, &target) {
                        return Err(Error::Other(format!(
                            "symlink {:?} points outside the dataset",
                            e.path
                        )));
                    }
                    let target =
                        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target);
                    std::os::unix::fs::symlink(target, &tmp)
                        .map_err(|err| Error::io("cannot create symlink", &tmp, err))
                }
                _ => self.copy_file(e, &tmp),
            };
            let renamed = written.and_then(|()| {
                if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                    return Err(Error::PathInTheWay(e.path.clone()));
                }
                std::fs::rename(&tmp, &dest).map_err(|err| Error::io("cannot write", &dest, err))
            });
            if let Err(err) = renamed {
                let _ = std::fs::remove_file(&tmp);
                return Err(err);
            }
        }
        Ok(out)
    }

    fn copy_file(&self, e: &Entry, tmp: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let file =
            std::fs::File::create(tmp).map_err(|err| Error::io("cannot create", tmp, err))?;
        if let Err(err) = self.store.copy_out(&e.id, &file) {
            // A damaged cache object is removed, so that the next load fetches it again.
            if matches!(err, Error::ObjectCorrupt { .. }) {
                let _ = self.store.remove(&e.id);
            }
            return Err(err);
        }
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(e.kind.file_mode()))
            .map_err(|err| Error::io("cannot set permissions of", tmp, err))
    }

    fn same(&self, e: &Entry, dest: &Path) -> bool {
        match e.kind {
            EntryKind::Symlink => match (
                std::fs::read_link(dest),
                self.store.read_verified(&e.id, 1 << 20),
            ) {
                (Ok(have), Ok(want)) => {
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::as_bytes(have.as_os_str())
                        == &want[..]
                }
                _ => false,
            },
            _ => holds(dest, &e.id),
        }
    }
}
