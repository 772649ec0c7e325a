//! The upload meter of a sharing downloader: bytes sent to each peer, an optional cap on the
//! upload rate, and when data last went out (a downloader seeds while others still fetch).
//!
//! iroh-blobs asks the provider's event handler before it sends each 16 KiB group (its
//! "throttle" event, with the connection it goes to): the meter counts the group for that
//! peer and, under a cap, answers only when the group's turn in a token bucket has come.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-peer upload accounting and the rate cap.
#[derive(Default)]
pub struct Meter {
    /// Bytes per second at most (None: no cap).
    cap: Option<u64>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sent: HashMap<[u8; 32], u64>,
    last: Option<Instant>,
    /// When the bucket is next empty: a group is sent no earlier than this.
    next_free: Option<Instant>,
}

impl Meter {
    pub fn new(cap: Option<u64>) -> Meter {
        Meter {
            cap: cap.filter(|c| *c > 0),
            inner: Mutex::default(),
        }
    }

    /// Counts `bytes` about to go to `peer`; returns how long to wait before sending them.
    pub fn charge(&self, peer: Option<[u8; 32]>, bytes: u64) -> Duration {
        let now = Instant::now();
        let mut m = self.inner.lock().expect("not poisoned");
        *m.sent.entry(peer.unwrap_or([0; 32])).or_default() += bytes;
        m.last = Some(now);
        let Some(cap) = self.cap else {
            return Duration::ZERO;
        };
        // A token bucket with one second of burst: the group goes at `start`, and the bucket
        // is busy for bytes / cap after it.
        let start = m
            .next_free
            .map_or(now, |t| t.max(now - Duration::from_secs(1)));
        m.next_free = Some(start + Duration::from_secs_f64(bytes as f64 / cap as f64));
        start.saturating_duration_since(now)
    }

    /// Bytes sent so far, per peer.
    pub fn sent(&self) -> HashMap<[u8; 32], u64> {
        self.inner.lock().expect("not poisoned").sent.clone()
    }

    /// When data last went out.
    pub fn last_upload(&self) -> Option<Instant> {
        self.inner.lock().expect("not poisoned").last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_spaces_groups_and_every_byte_is_counted() {
        let m = Meter::new(Some(16 << 10));
        let peer = Some([3u8; 32]);
        let mut waits = Vec::new();
        for _ in 0..4 {
            waits.push(m.charge(peer, 16 << 10));
        }
        // One second of burst, then a group a second.
        assert!(waits[0] < Duration::from_millis(10));
        assert!(waits[3] > Duration::from_millis(1500));
        assert_eq!(m.sent()[&[3u8; 32]], 64 << 10);
        let free = Meter::new(None);
        assert_eq!(free.charge(None, 1 << 20), Duration::ZERO);
        assert!(free.last_upload().is_some());
    }
}
