//! Cutting a stream into content-defined chunks without copying it around.
//!
//! [`Cutter`] reads its source in 4 MiB blocks and hands out each chunk as a [`Piece`]: a
//! range of a shared block, sent as is to the threads that hash and store it. Its cut points
//! are exactly those of `fastcdc::v2020::StreamCDC` with the same bounds (normalization
//! level 1, the default gear table) — the chunks of a file do not depend on which of the two
//! cut it — but it does not copy every chunk out of its buffer and shift the rest of the
//! buffer down after each chunk, which was 11 % of `add`'s CPU samples (measured with
//! `perf`, docs/PERFORMANCE.md "`add` with the block chunker"). Only the tail of a block
//! (less than one chunk) is copied, to the front of the next block.
//!
//! Blocks come from a [`Pool`] and go back to it when their last piece is dropped, so
//! memory is bounded by the pieces in flight and a block is zeroed only once.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use fastcdc::v2020::{cut, select_masks, Normalization};

/// Bytes read from the source at a time.
pub const BLOCK: usize = 4 << 20;
/// Blocks a pool keeps for reuse.
const POOL_KEEP: usize = 8;

/// Buffers for reuse (see the module documentation).
#[derive(Clone, Default)]
pub struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl Pool {
    /// A buffer of at least `len` bytes (zeroed only where freshly allocated).
    fn take(&self, len: usize) -> Vec<u8> {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        if v.len() < len {
            v.resize(len, 0);
        }
        v
    }

    /// Reads `source` until `len` bytes or its end; returns the filled block and whether the
    /// source ended.
    pub fn read_block(&self, source: &mut impl Read, len: usize) -> io::Result<(Piece, bool)> {
        let mut v = self.take(len);
        v.truncate(len);
        let (v, n, ended) = self.fill(source, v, 0)?;
        Ok((self.piece(v, n), ended))
    }

    /// Reads `source` into `v` from `at` until `v` is full or the source ends; returns `v`,
    /// the bytes read and whether the source ended (on an error `v` goes back to the pool).
    fn fill(
        &self,
        source: &mut impl Read,
        mut v: Vec<u8>,
        at: usize,
    ) -> io::Result<(Vec<u8>, usize, bool)> {
        let mut n = at;
        while n < v.len() {
            match source.read(&mut v[n..]) {
                Ok(0) => return Ok((v, n - at, true)),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.give(v);
                    return Err(e);
                }
            }
        }
        Ok((v, n - at, false))
    }

    /// Wraps `data` as one piece covering its first `len` bytes.
    fn piece(&self, data: Vec<u8>, len: usize) -> Piece {
        Piece {
            block: Arc::new(Block {
                data,
                pool: self.clone(),
            }),
            start: 0,
            end: len,
        }
    }

    fn give(&self, v: Vec<u8>) {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < POOL_KEEP {
            kept.push(v);
        }
    }
}

struct Block {
    data: Vec<u8>,
    pool: Pool,
}

impl Drop for Block {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.data));
    }
}

/// A range of a shared block: a chunk, or a block read whole.
#[derive(Clone)]
pub struct Piece {
    block: Arc<Block>,
    start: usize,
    end: usize,
}

impl Piece {
    /// The piece `range` of this one (relative to its start).
    fn sub(&self, range: std::ops::Range<usize>) -> Piece {
        debug_assert!(range.end <= self.len());
        Piece {
            block: self.block.clone(),
            start: self.start + range.start,
            end: self.start + range.end,
        }
    }
}

impl std::ops::Deref for Piece {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.block.data[self.start..self.end]
    }
}

/// FastCDC (v2020) cut points over a stream (see the module documentation).
pub struct Cutter<R> {
    source: R,
    pool: Pool,
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    /// The bytes being cut, and the next chunk's start in them.
    buf: Option<Piece>,
    pos: usize,
    /// Whether the source has nothing after `buf`.
    eof: bool,
}

impl<R: Read> Cutter<R> {
    /// A cutter with FastCDC's bounds (bytes; even, as FastCDC requires).
    pub fn new(source: R, min: u32, avg: u32, max: u32) -> Cutter<R> {
        let (mask_s, mask_l) = select_masks(avg as usize, Normalization::Level1);
        Cutter {
            source,
            pool: Pool::default(),
            min: min as usize,
            avg: avg as usize,
            max: max as usize,
            mask_s,
            mask_l,
            buf: None,
            pos: 0,
            eof: false,
        }
    }

    fn next_chunk(&mut self) -> io::Result<Option<Piece>> {
        let here = self.buf.as_ref().map_or(&[][..], |b| &b[self.pos..]);
        if here.len() < self.max && !self.eof {
            // A chunk starting here may end beyond this block: the next block begins with
            // the bytes left here (less than one chunk), then reads on.
            let mut v = self.pool.take(BLOCK.max(2 * self.max));
            let left = here.len();
            v[..left].copy_from_slice(here);
            let (v, n, ended) = self.pool.fill(&mut self.source, v, left)?;
            self.eof = ended;
            self.buf = Some(self.pool.piece(v, left + n));
            self.pos = 0;
        }
        let Some(buf) = self.buf.as_ref().filter(|b| self.pos < b.len()) else {
            return Ok(None);
        };
        let (_, n) = cut(
            &buf[self.pos..],
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        let piece = buf.sub(self.pos..self.pos + n);
        self.pos += n;
        Ok(Some(piece))
    }
}

impl<R: Read> Iterator for Cutter<R> {
    type Item = io::Result<Piece>;

    fn next(&mut self) -> Option<io::Result<Piece>> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// A reader returning at most `step` bytes per call, to exercise partial reads.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn streamcdc(data: &[u8], min: u32, avg: u32, max: u32) -> Vec<Vec<u8>> {
        fastcdc::v2020::StreamCDC::new(data, min as usize, avg as usize, max as usize)
            .map(|c| c.expect("in memory").data)
            .collect()
    }

    #[test]
    fn cuts_where_streamcdc_cuts() {
        // Sizes around block boundaries, a long run of zeros (max-size chunks) in the middle,
        // partial reads; the chunks of the crate's own streaming chunker are the reference.
        let (min, avg, max) = (64 << 10, 256 << 10, 1 << 20);
        for (len, step, seed) in [
            (0, 1 << 20, 1),
            (100, 1 << 20, 2),
            (3 * BLOCK + 12_345, 1 << 20, 3),
            (2 * BLOCK, 1 << 20, 4),
            (BLOCK - 1, 65_537, 5),
            (BLOCK + (max as usize) / 2, 1 << 22, 6),
        ] {
            let mut data = pseudo_random(len, seed);
            if len > BLOCK {
                data[BLOCK - 300_000..(BLOCK + 2_500_000).min(len)].fill(0);
            }
            let want = streamcdc(&data, min, avg, max);
            let got: Vec<Vec<u8>> = Cutter::new(Dribble(&data, step), min, avg, max)
                .map(|c| c.expect("in memory").to_vec())
                .collect();
            assert_eq!(got.len(), want.len(), "chunk count for {len} bytes");
            assert!(got == want, "chunks differ for {len} bytes");
        }
    }

    #[test]
    fn a_read_error_is_returned() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut c = Cutter::new(Failing, 64 << 10, 256 << 10, 1 << 20);
        let e = c.next().expect("an item").err().expect("an error");
        assert_eq!(e.to_string(), "disk on fire");
    }
}
