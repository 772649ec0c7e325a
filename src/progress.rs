//! Progress reporting as a core trait; the CLI draws it with indicatif, the core never does.

/// Receives progress of long work (bytes hashed or copied, objects checked).
pub trait Progress: Send + Sync {
    /// Sets the expected total, when known.
    fn set_total(&self, _total: u64) {}
    /// Adds `n` units of work done.
    fn inc(&self, _n: u64) {}
    /// Ends the report.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
