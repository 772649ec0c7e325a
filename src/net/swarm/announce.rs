//! Swarm announcements: "endpoint E, at these addresses, takes part in dataset D's swarm",
//! signed by E's own key (the device key an iroh endpoint is bound with), and the bounded book
//! of peers they fill.
//!
//! An announcement can only be made by the endpoint it names, so a flood of fake peers costs
//! the flooder a key per peer and costs a dialler one bounded connection attempt each; the
//! book keeps at most [`MAX_PEERS`] per dataset, takes a peer's new announcement at most once a
//! second, and lets a newcomer in only in place of an entry not refreshed for [`STALE`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ticket::Provider;

/// Largest encoded announcement accepted.
pub const MAX_ANNOUNCEMENT: usize = 512;
/// Most addresses an announcement may carry.
pub const MAX_ADDRS: usize = 8;
/// Most peers kept per dataset.
pub const MAX_PEERS: usize = 64;
/// How long an announcement stays good after it was made (seconds).
pub const FRESH: u64 = 120;
/// How far in the future an announcement's time may lie (clock skew, seconds).
const SKEW: u64 = 300;
/// An entry not refreshed for this long may be replaced by a newcomer when the book is full.
pub const STALE: Duration = Duration::from_secs(30);
/// A peer's announcements are taken at most this often.
const MIN_GAP: Duration = Duration::from_secs(1);
const DOMAIN: &[u8] = b"lode-swarm-announce-v1\0";

/// What an announcement says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub dataset: [u8; 32],
    /// The announcing endpoint: its id (the signing key) and where to reach it.
    pub peer: Provider,
    /// Unix seconds when it was made.
    pub time: u64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    body: Vec<u8>,
    sig: Vec<u8>,
}

impl Announcement {
    /// Signs an announcement of `peer` (whose id must be `key`'s public key).
    pub fn sign(key: &SigningKey, dataset: [u8; 32], mut peer: Provider, time: u64) -> Vec<u8> {
        peer.addrs.truncate(MAX_ADDRS);
        let body = postcard::to_stdvec(&Announcement {
            dataset,
            peer,
            time,
        })
        .expect("in-memory value");
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(&body);
        let sig = key.sign(&msg).to_bytes().to_vec();
        postcard::to_stdvec(&Wire { body, sig }).expect("in-memory value")
    }

    /// Checks an announcement for `dataset` at time `now`: bounded size, one canonical
    /// encoding, fresh, signed by the endpoint it names.
    pub fn verify(bytes: &[u8], dataset: &[u8; 32], now: u64) -> Result<Announcement, String> {
        if bytes.len() > MAX_ANNOUNCEMENT {
            return Err(format!("announcement of {} bytes", bytes.len()));
        }
        let wire: Wire = strict(bytes)?;
        let a: Announcement = strict(&wire.body)?;
        if &a.dataset != dataset {
            return Err("announcement for another dataset".into());
        }
        if a.peer.addrs.len() > MAX_ADDRS || a.peer.relay.as_ref().is_some_and(|r| r.len() > 256) {
            return Err("announcement with too many addresses".into());
        }
        if a.time > now + SKEW || now.saturating_sub(a.time) > FRESH {
            return Err("announcement out of date".into());
        }
        let key = VerifyingKey::from_bytes(&a.peer.id).map_err(|_| "invalid peer key")?;
        let sig: [u8; 64] = wire
            .sig
            .as_slice()
            .try_into()
            .map_err(|_| "bad signature length")?;
        let mut msg = DOMAIN.to_vec();
        msg.extend_from_slice(&wire.body);
        key.verify(&msg, &Signature::from_bytes(&sig))
            .map_err(|_| "announcement not signed by the peer it names")?;
        Ok(a)
    }
}

/// Decodes `bytes` as `T`, refusing trailing bytes and any encoding but the canonical one.
fn strict<T: Serialize + for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, String> {
    let v: T = crate::net::proto::decode(bytes)?;
    if postcard::to_stdvec(&v).map_err(|e| e.to_string())? != bytes {
        return Err("non-canonical encoding".into());
    }
    Ok(v)
}

struct Entry {
    signed: Vec<u8>,
    announcement: Announcement,
    seen: Instant,
}

/// The peers announced for one dataset, bounded (see the module documentation).
pub struct PeerBook {
    dataset: [u8; 32],
    /// This endpoint: never listed.
    me: [u8; 32],
    peers: Mutex<HashMap<[u8; 32], Entry>>,
}

impl PeerBook {
    pub fn new(dataset: [u8; 32], me: [u8; 32]) -> PeerBook {
        PeerBook {
            dataset,
            me,
            peers: Mutex::new(HashMap::new()),
        }
    }

    pub fn dataset(&self) -> [u8; 32] {
        self.dataset
    }

    /// Takes a signed announcement if it verifies and the bounds admit it; returns whether it
    /// named a peer not in the book before.
    pub fn offer(&self, signed: &[u8], now: u64) -> bool {
        let Ok(a) = Announcement::verify(signed, &self.dataset, now) else {
            return false;
        };
        if a.peer.id == self.me {
            return false;
        }
        let mut peers = self.peers.lock().expect("not poisoned");
        let at = Instant::now();
        if let Some(e) = peers.get_mut(&a.peer.id) {
            if at.duration_since(e.seen) >= MIN_GAP && a.time >= e.announcement.time {
                *e = Entry {
                    signed: signed.to_vec(),
                    announcement: a,
                    seen: at,
                };
            }
            return false;
        }
        if peers.len() >= MAX_PEERS {
            let oldest = peers
                .iter()
                .min_by_key(|(_, e)| e.seen)
                .map(|(k, e)| (*k, e.seen));
            match oldest {
                Some((k, seen)) if at.duration_since(seen) >= STALE => {
                    peers.remove(&k);
                }
                _ => return false,
            }
        }
        peers.insert(
            a.peer.id,
            Entry {
                signed: signed.to_vec(),
                announcement: a,
                seen: at,
            },
        );
        true
    }

    /// The peers whose announcements are still fresh, most recently seen first.
    pub fn peers(&self, now: u64) -> Vec<Provider> {
        let peers = self.peers.lock().expect("not poisoned");
        let mut list: Vec<&Entry> = peers
            .values()
            .filter(|e| now.saturating_sub(e.announcement.time) <= FRESH)
            .collect();
        list.sort_by_key(|e| std::cmp::Reverse(e.seen));
        list.iter().map(|e| e.announcement.peer.clone()).collect()
    }

    /// The signed announcements still fresh (what a tracker hands out).
    pub fn signed(&self, now: u64) -> Vec<Vec<u8>> {
        let peers = self.peers.lock().expect("not poisoned");
        peers
            .values()
            .filter(|e| now.saturating_sub(e.announcement.time) <= FRESH)
            .map(|e| e.signed.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(key: &SigningKey) -> Provider {
        Provider {
            id: key.verifying_key().to_bytes(),
            addrs: vec!["127.0.0.1:4000".parse().unwrap()],
            relay: None,
        }
    }

    #[test]
    fn announcements_verify_only_for_their_signer_dataset_and_time() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let ds = [7u8; 32];
        let now = 1_000_000;
        let signed = Announcement::sign(&key, ds, provider(&key), now);
        assert_eq!(
            Announcement::verify(&signed, &ds, now).unwrap().peer.id,
            key.verifying_key().to_bytes()
        );
        assert!(Announcement::verify(&signed, &[8u8; 32], now).is_err());
        assert!(Announcement::verify(&signed, &ds, now + FRESH + 1).is_err());
        assert!(Announcement::verify(&signed, &ds, now - SKEW - 1).is_err());
        // Signed by one key, naming another: refused.
        let forged = Announcement::sign(&other, ds, provider(&key), now);
        assert!(Announcement::verify(&forged, &ds, now).is_err());
        let mut flipped = signed.clone();
        let n = flipped.len();
        flipped[n - 1] ^= 1;
        assert!(Announcement::verify(&flipped, &ds, now).is_err());
        let mut long = signed.clone();
        long.push(0);
        assert!(Announcement::verify(&long, &ds, now).is_err());
    }

    #[test]
    fn the_book_is_bounded_and_keeps_live_peers_under_a_flood() {
        let me = SigningKey::generate(&mut rand::rngs::OsRng);
        let ds = [1u8; 32];
        let now = 1_000_000;
        let book = PeerBook::new(ds, me.verifying_key().to_bytes());
        assert!(!book.offer(&Announcement::sign(&me, ds, provider(&me), now), now));
        let first = SigningKey::generate(&mut rand::rngs::OsRng);
        assert!(book.offer(&Announcement::sign(&first, ds, provider(&first), now), now));
        for _ in 0..500 {
            let k = SigningKey::generate(&mut rand::rngs::OsRng);
            book.offer(&Announcement::sign(&k, ds, provider(&k), now), now);
        }
        let peers = book.peers(now);
        assert_eq!(peers.len(), MAX_PEERS);
        // The flood did not push out a peer that is still fresh.
        assert!(peers
            .iter()
            .any(|p| p.id == first.verifying_key().to_bytes()));
        assert!(book.signed(now + FRESH + 1).is_empty());
    }
}
