//! Progress reporting as a core trait; the CLI draws it with indicatif, the core never does.
//!
//! Long work comes in phases (`hashing`, `receiving`, `checking out`, …). A phase whose
//! totals are known starts with [`Progress::phase`] *before* its work begins, so a drawn
//! total never grows; a phase that discovers its work as it goes (a directory walk) starts
//! with [`Progress::scan`]. Within a phase, [`Progress::inc`] adds bytes and
//! [`Progress::file_done`] one finished file (both are called from worker threads, once per
//! file or chunk: implementations keep them to an atomic add).

/// Receives progress of long work (bytes hashed or copied, files written, objects checked).
pub trait Progress: Send + Sync {
    /// Starts a phase named `name` (a gerund: `hashing`, `receiving`) that will process
    /// `files` files of `bytes` bytes in all; the counts start again from zero.
    fn phase(&self, _name: &'static str, _files: u64, _bytes: u64) {}
    /// Starts a phase named `name` whose totals are not known up front (what it counts is
    /// what it met so far).
    fn scan(&self, _name: &'static str) {}
    /// Sets the expected byte total of the current phase, when known.
    fn set_total(&self, _total: u64) {}
    /// Adds `n` bytes of work done.
    fn inc(&self, _n: u64) {}
    /// Counts one file (or object) done.
    fn file_done(&self) {}
    /// Ends the report: the last phase is complete.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
