//! The writer of checkout (and of `lode get`): a file appears at its destination whole or
//! not at all. It is written under a temp path, then renamed over the destination; the temp
//! path never outlives the attempt.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temp path that is removed when dropped, unless kept.
pub(super) struct TempPath(Option<PathBuf>);

impl TempPath {
    pub(super) fn new(p: PathBuf) -> TempPath {
        // A dead process of the same pid may have left this name.
        let _ = fs::remove_file(&p);
        TempPath(Some(p))
    }

    pub(super) fn path(&self) -> &Path {
        self.0.as_deref().expect("not kept yet")
    }

    /// Renames the temp path to `dest`; on failure the temp path is removed.
    pub(super) fn rename_to(mut self, dest: &Path) -> std::io::Result<()> {
        fs::rename(self.path(), dest)?;
        self.0 = None;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// One file on its way to `dest`. The temp path is a fresh `<kind>-<pid>-<n>` in `tmp_dir`
/// (`.lode/tmp` for a checkout: on the file system of `.lode`, and a killed command's temp
/// files there are removed by the next one that takes the writer lock). Where `dest` lies
/// on another file system, or `tmp_dir` is gone (removed by hand), the file is written again
/// beside `dest`, under a name that the next checkout, `gc`, `status` or `get` knows for
/// lode's (see [`crate::leftover`]).
///
/// [`place`] drives it for a writer that blocks; an async writer (`lode get` exporting from
/// its transfer store) drives it itself: write [`Placing::tmp`], then [`Placing::finish`],
/// again while it returns a next attempt.
pub struct Placing<'a> {
    dest: &'a Path,
    tmp_dir: &'a Path,
    tmp: TempPath,
    /// The temp path is beside `dest`: the last attempt.
    beside: bool,
}

impl<'a> Placing<'a> {
    /// Starts placing `dest`, with a temp path in `tmp_dir` named for `kind` (`checkout`,
    /// `get`).
    pub fn new(tmp_dir: &'a Path, kind: &str, dest: &'a Path) -> Placing<'a> {
        Placing {
            dest,
            tmp_dir,
            tmp: TempPath::new(crate::leftover::in_tmp_dir(tmp_dir, kind)),
            beside: false,
        }
    }

    /// The temp path to write.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// Ends an attempt whose writing of [`Placing::tmp`] went as `made` says: renames the
    /// written file over `dest`. `Ok(None)`: placed. `Ok(Some(next))`: write `next.tmp()`
    /// (beside `dest`) and finish that one. Otherwise the error of the writing or of the
    /// rename; no temp file remains.
    pub fn finish(self, made: Result<()>) -> Result<Option<Placing<'a>>> {
        let Placing {
            dest,
            tmp_dir,
            tmp,
            beside,
        } = self;
        match made {
            Err(err) if beside || tmp_dir.is_dir() => return Err(err),
            Err(_) => drop(tmp),
            Ok(()) => {
                crate::leftover::test_slowdown();
                match tmp.rename_to(dest) {
                    Ok(()) => return Ok(None),
                    Err(err) if beside || err.kind() != std::io::ErrorKind::CrossesDevices => {
                        return Err(Error::io("cannot write", dest, err));
                    }
                    Err(_) => {}
                }
            }
        }
        let parent = dest
            .parent()
            .ok_or_else(|| Error::Other(format!("cannot write {}: no parent", dest.display())))?;
        Ok(Some(Placing {
            dest,
            tmp_dir,
            tmp: TempPath::new(crate::leftover::beside(parent)),
            beside: true,
        }))
    }
}

/// Makes `dest` appear whole or not at all (see [`Placing`]): `make` writes the temp path
/// it is given (a second time, beside `dest`, when the first cannot be renamed there).
pub fn place(
    tmp_dir: &Path,
    kind: &str,
    dest: &Path,
    make: impl Fn(&Path) -> Result<()>,
) -> Result<()> {
    let mut at = Placing::new(tmp_dir, kind, dest);
    loop {
        let made = make(at.tmp());
        match at.finish(made)? {
            Some(next) => at = next,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A temp directory holding `tmp/` (the temp directory) and `work/` (the destinations).
    fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let (tmp_dir, work) = (d.path().join("tmp"), d.path().join("work"));
        fs::create_dir(&tmp_dir).unwrap();
        fs::create_dir(&work).unwrap();
        (d, tmp_dir, work)
    }

    #[test]
    fn a_file_is_placed_whole_and_no_temp_file_stays() {
        let (_d, tmp_dir, work) = dirs();
        let dest = work.join("f");
        place(&tmp_dir, "get", &dest, |tmp| {
            assert!(tmp.starts_with(&tmp_dir), "{}", tmp.display());
            fs::write(tmp, b"new").map_err(|e| Error::io("cannot write", tmp, e))
        })
        .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert!(names(&tmp_dir).is_empty());
        assert_eq!(names(&work), ["f"]);
    }

    #[test]
    fn a_failed_write_leaves_the_destination_as_it_was() {
        let (_d, tmp_dir, work) = dirs();
        let dest = work.join("f");
        fs::write(&dest, b"the user's").unwrap();
        let err = place(&tmp_dir, "get", &dest, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(Error::Other("broke off".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("broke off"), "{err}");
        assert_eq!(fs::read(&dest).unwrap(), b"the user's");
        assert!(names(&tmp_dir).is_empty());
        assert_eq!(names(&work), ["f"]);
    }

    #[test]
    fn without_its_temp_directory_a_file_is_written_beside_its_destination() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        fs::create_dir(&work).unwrap();
        let dest = work.join("f");
        let gone = d.path().join("gone");
        let at = Placing::new(&gone, "checkout", &dest);
        let made = fs::write(at.tmp(), b"x").map_err(|e| Error::io("cannot write", at.tmp(), e));
        let next = at.finish(made).unwrap().expect("a second attempt");
        assert_eq!(next.tmp().parent(), Some(work.as_path()));
        fs::write(next.tmp(), b"x").unwrap();
        assert!(next.finish(Ok(())).unwrap().is_none());
        assert_eq!(fs::read(&dest).unwrap(), b"x");
        assert_eq!(names(&work), ["f"]);
    }
}
