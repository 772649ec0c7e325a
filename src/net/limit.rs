//! Bounds on the work peers can make a server do: per peer (by endpoint id), a request rate
//! (a token bucket) and a number of requests in progress; over all peers, a number of
//! requests in progress (beyond it, a request waits a little for its turn, then is refused).
//!
//! Requests come in two classes: work (listing refs, revocations, pushes), and long polls
//! (`WaitHead`), which hold nothing but a task while they wait and get their own, larger,
//! bounds (a mirror follows each dataset of one origin with a poll of its own).
//!
//! An endpoint id costs nothing to make, so the per-peer bounds only stop one peer from
//! crowding out the others; the global bounds keep the total work bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The numbers a [`Limiter`] enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Requests per second one peer may sustain.
    pub rate: f64,
    /// Requests one peer may send at once after a quiet spell (the bucket's size).
    pub burst: f64,
    /// Work requests of one peer in progress at once.
    pub per_peer: usize,
    /// Long polls of one peer in progress at once.
    pub per_peer_polls: usize,
    /// Work requests of all peers in progress at once.
    pub total: usize,
    /// Long polls of all peers in progress at once.
    pub total_polls: usize,
    /// How long a work request waits for its turn when `total` are in progress.
    pub queue: Duration,
}

impl Limits {
    /// The bounds of a registry's `lode-registry/3` protocol: one peer's requests in
    /// progress are bounded as on `lode/2`, its rate far less (a registry syncing with its
    /// peers, or a lab publishing its datasets, sends bursts; the entries themselves are
    /// bounded per publisher and per peer by the registry).
    pub const REGISTRY: Limits = Limits {
        rate: 256.0,
        burst: 1024.0,
        per_peer: 8,
        per_peer_polls: 0,
        total: 64,
        total_polls: 0,
        queue: Duration::from_secs(10),
    };

    /// The bounds of `lode serve`'s `lode/2` protocol.
    pub const LODE2: Limits = Limits {
        rate: 16.0,
        burst: 64.0,
        per_peer: 8,
        per_peer_polls: 256,
        total: 64,
        total_polls: 4096,
        queue: Duration::from_secs(10),
    };
}

/// The kind of a request, for the bounds it counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Work,
    Poll,
}

/// Peers not heard from in a while are forgotten once this many are tracked.
const TRACKED: usize = 16384;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    work: usize,
    polls: usize,
}

/// Admits or refuses requests under [`Limits`].
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    peers: Mutex<HashMap<[u8; 32], Bucket>>,
    work: Arc<Semaphore>,
    polls: Arc<Semaphore>,
}

/// A request in progress; dropping it ends the request's count.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    peer: [u8; 32],
    class: Class,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut peers = self.limiter.peers.lock().expect("not poisoned");
        if let Some(b) = peers.get_mut(&self.peer) {
            match self.class {
                Class::Work => b.work = b.work.saturating_sub(1),
                Class::Poll => b.polls = b.polls.saturating_sub(1),
            }
        }
    }
}

impl Limiter {
    pub fn new(limits: Limits) -> Arc<Limiter> {
        Arc::new(Limiter {
            work: Arc::new(Semaphore::new(limits.total)),
            polls: Arc::new(Semaphore::new(limits.total_polls)),
            peers: Mutex::new(HashMap::new()),
            limits,
        })
    }

    /// Admits one request of `peer`, or says why not (a text for the peer). Waits at most
    /// [`Limits::queue`] for a free slot among all peers' requests.
    pub async fn admit(
        self: &Arc<Self>,
        peer: [u8; 32],
        class: Class,
    ) -> std::result::Result<Permit, String> {
        let l = &self.limits;
        {
            let mut peers = self.peers.lock().expect("not poisoned");
            let now = Instant::now();
            if peers.len() >= TRACKED && !peers.contains_key(&peer) {
                // Forget the peers whose bucket has refilled and that have nothing running.
                peers.retain(|_, b| {
                    let full = b.tokens + now.duration_since(b.last).as_secs_f64() * l.rate;
                    b.work > 0 || b.polls > 0 || full < l.burst
                });
                if peers.len() >= TRACKED {
                    return Err(busy());
                }
            }
            let b = peers.entry(peer).or_insert(Bucket {
                tokens: l.burst,
                last: now,
                work: 0,
                polls: 0,
            });
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * l.rate).min(l.burst);
            b.last = now;
            if b.tokens < 1.0 {
                return Err(format!(
                    "too many requests from this peer (at most {} a second); wait a few seconds and try again",
                    l.rate
                ));
            }
            let (running, most) = match class {
                Class::Work => (&mut b.work, l.per_peer),
                Class::Poll => (&mut b.polls, l.per_peer_polls),
            };
            if *running >= most {
                return Err(format!(
                    "too many requests from this peer at once (at most {most}); wait for the others to finish"
                ));
            }
            *running += 1;
            b.tokens -= 1.0;
        }
        let slot = match class {
            Class::Work => tokio::time::timeout(l.queue, self.work.clone().acquire_owned())
                .await
                .ok()
                .and_then(|r| r.ok()),
            Class::Poll => self.polls.clone().try_acquire_owned().ok(),
        };
        let Some(slot) = slot else {
            let mut peers = self.peers.lock().expect("not poisoned");
            if let Some(b) = peers.get_mut(&peer) {
                match class {
                    Class::Work => b.work = b.work.saturating_sub(1),
                    Class::Poll => b.polls = b.polls.saturating_sub(1),
                }
            }
            return Err(busy());
        };
        Ok(Permit {
            limiter: self.clone(),
            peer,
            class,
            _slot: slot,
        })
    }
}

fn busy() -> String {
    "this peer is busy (too many requests in progress); try again in a few seconds".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            rate: 1.0,
            burst: 3.0,
            per_peer: 2,
            per_peer_polls: 1,
            total: 3,
            total_polls: 10,
            queue: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn bounds_rate_concurrency_and_total() {
        let l = Limiter::new(limits());
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        let p1 = l.admit(a, Class::Work).await.unwrap();
        let p2 = l.admit(a, Class::Work).await.unwrap();
        let e = l.admit(a, Class::Work).await.unwrap_err();
        assert!(e.contains("at once"), "{e}");
        drop(p1);
        // The refused request did not spend a token; this one spends the last.
        let p3 = l.admit(a, Class::Work).await.unwrap();
        drop((p2, p3));
        let e = l.admit(a, Class::Work).await.unwrap_err();
        assert!(e.contains("a second"), "{e}");
        // Other peers are not affected, up to the total.
        let q: Vec<_> = vec![
            l.admit(b, Class::Work).await.unwrap(),
            l.admit(b, Class::Work).await.unwrap(),
            l.admit(c, Class::Work).await.unwrap(),
        ];
        let e = l.admit(c, Class::Work).await.unwrap_err();
        assert!(e.contains("busy"), "{e}");
        drop(q);
        let d = [4; 32];
        let _w = l.admit(d, Class::Poll).await.unwrap();
        let e = l.admit(d, Class::Poll).await.unwrap_err();
        assert!(e.contains("at once"), "{e}");
    }
}
