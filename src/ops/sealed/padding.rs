//! Padding inside the encryption: Padmé lengths, the padded form of a plaintext and the
//! reader that checks and removes it.

use std::io::Read;

/// The start of a padded plaintext, inside the encryption: magic, then the length (u64 LE).
pub(super) const PAD_MAGIC: &[u8; 5] = b"LODP\x01";
pub(super) const PAD_HEADER: u64 = 13;

/// The padded length of a plaintext of `len` bytes with its header: Padmé (as in PURBs),
/// which rounds up to a number whose low bits are zero, keeping at most
/// O(log log n) bits of the length and costing at most 12% (less for larger objects).
pub fn pad_len(len: u64) -> u64 {
    let l = len + PAD_HEADER;
    let e = 63 - u64::from(l.leading_zeros()); // floor(log2 l); l >= 13
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2 e) + 1
    let mask = (1u64 << (e - s)) - 1;
    (l + mask) & !mask
}

/// The padded form of `data`: header (magic, length), the bytes, zeros up to [`pad_len`].
pub(super) fn pad(data: &[u8]) -> Vec<u8> {
    let total = pad_len(data.len() as u64) as usize;
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(PAD_MAGIC);
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend_from_slice(data);
    v.resize(total, 0);
    v
}

fn bad_padding(msg: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("bad padding: {msg}"),
    )
}

/// Reads the bytes out of a padded plaintext, checking the header, that the padding is
/// zeros and that the total is exactly [`pad_len`] (one padded form per plaintext).
pub(super) struct Unpad<R: Read> {
    inner: R,
    /// Bytes of the plaintext still to give; `None` before the header is read.
    left: Option<u64>,
    len: u64,
    done: bool,
}

impl<R: Read> Unpad<R> {
    pub(super) fn new(inner: R) -> Self {
        Unpad {
            inner,
            left: None,
            len: 0,
            done: false,
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let mut pad = 0u64;
        let mut buf = [0u8; 8192];
        loop {
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(bad_padding("non-zero padding bytes"));
            }
            pad += n as u64;
            if PAD_HEADER + self.len + pad > pad_len(self.len) {
                return Err(bad_padding("longer than its length allows"));
            }
        }
        if PAD_HEADER + self.len + pad != pad_len(self.len) {
            return Err(bad_padding("shorter than its length requires"));
        }
        self.done = true;
        Ok(())
    }
}

impl<R: Read> Read for Unpad<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let left = match self.left {
            Some(l) => l,
            None => {
                let mut h = [0u8; PAD_HEADER as usize];
                self.inner
                    .read_exact(&mut h)
                    .map_err(|_| bad_padding("no header"))?;
                if &h[..5] != PAD_MAGIC {
                    return Err(bad_padding("no header"));
                }
                self.len = u64::from_le_bytes(h[5..].try_into().expect("8 bytes"));
                self.left = Some(self.len);
                self.len
            }
        };
        if left == 0 {
            self.finish()?;
            return Ok(0);
        }
        let k = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..k])?;
        if n == 0 {
            return Err(bad_padding("shorter than its length"));
        }
        self.left = Some(left - n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn padme_lengths() {
        // 33 and 34 bytes pad alike; lengths only grow, by at most 12%.
        assert_eq!(pad_len(33), pad_len(34));
        let mut prev = 0;
        for len in (0..100_000u64).chain([1 << 20, (60 << 20) + 7, u32::MAX as u64]) {
            let p = pad_len(len);
            assert!(p >= len + PAD_HEADER && p >= prev, "{len}");
            assert!(
                (p - len - PAD_HEADER) * 100 <= (len + PAD_HEADER) * 12,
                "{len}"
            );
            prev = p;
        }
        // Few distinct sizes: 1000..2000 bytes map to a handful of padded lengths.
        let sizes: HashSet<u64> = (1000..2000).map(pad_len).collect();
        assert!(sizes.len() <= 17, "{}", sizes.len());
    }
}
