//! Many small objects from the origins and every swarm peer: `GetMany` batches dealt across
//! them, as [`super::pieces`] deals the pieces of one big object.
//!
//! The caller cuts the objects, sorted by id, into batches (so that downloaders of the same
//! head cut the same batches). A swarm peer holds no bitfield of small objects, so a
//! downloader learns what a peer holds by asking: a peer's gatekeeper lets through a
//! `GetMany` only when every object it names was landed (verified and written) by that peer,
//! and refuses it at once otherwise. A refused batch is not asked of that peer again for
//! [`RECHECK`]; each downloader takes the batches in its own random order, so that the
//! downloaders of one dataset hold different batches early and can trade them.
//!
//! Swarm peers are asked first, [`LANES`] batches at a time each; an origin is asked for a
//! batch only when every connected swarm peer refused it in the last [`TRUSTED`], and, once
//! swarm peers are connected, for one batch at a time (before, [`ORIGIN_LANES`] batches,
//! and more small ones up to [`ORIGIN_BYTES`] in flight, [`ORIGIN_MOST_LANES`] at most): the
//! publisher's uplink sends each batch about once and the downloaders trade the rest. Every
//! object is verified against its id by iroh-blobs as it streams, a batch is held in memory
//! only until the writers take it, and the batches in flight are bounded by the peers' lanes.
//! A peer that sends an object failing verification is named and banned for the session; one
//! that fails otherwise is dropped (a swarm peer may come back); an origin that fails is not
//! asked again (its batches go elsewhere, and what nobody serves goes back to the caller).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_buffered::FuturesUnordered;
use iroh::endpoint::{Connection, VarInt};
use iroh::EndpointId;
use iroh_blobs::Hash;
use n0_future::StreamExt;
use rand::seq::SliceRandom;

use crate::error::Error;
use crate::net::endpoint::{peer_name, Net};
use crate::net::pieces::get_many;
use crate::progress::Progress;

use super::dial::Dialer;
use super::pieces::LANES;
use super::session::Session;

/// Batches in flight at an origin before any swarm peer is connected.
pub const ORIGIN_LANES: usize = 4;
/// More batches in flight at an origin before any swarm peer is connected, while their
/// bytes stay under this: a batch is at most 64 objects, 64 KiB of 1 KiB files, and four of
/// those in flight leave the link and the provider idle between requests. Batches of
/// 256 KiB or more get the [`ORIGIN_LANES`] alone, as before: what a downloader asks of
/// the origin before it meets its swarm is not traded.
pub const ORIGIN_BYTES: u64 = 1 << 20;
/// Batches in flight at an origin before any swarm peer is connected, however small.
pub const ORIGIN_MOST_LANES: usize = 16;
/// A swarm peer that refused a batch is asked for it again after this long.
pub const RECHECK: Duration = Duration::from_millis(500);
/// An origin is asked for a batch only when every connected swarm peer refused it this
/// recently.
pub const TRUSTED: Duration = Duration::from_secs(2);
/// Longest one batch request may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// With no origin left, how long the swarm peers may deliver nothing before the batches
/// left go back to the caller.
const PATIENCE: Duration = Duration::from_secs(5);

/// What fetching the batches moved.
#[derive(Default)]
pub struct Fetched {
    /// Payload bytes received.
    pub bytes: u64,
    /// Peers that delivered batches.
    pub peers: Vec<String>,
    /// Origins that failed a batch (not to be asked for batches again).
    pub failed_origins: Vec<EndpointId>,
    /// Batches nobody delivered.
    pub left: Vec<Vec<Hash>>,
}

struct Peer {
    conn: Connection,
    origin: bool,
    inflight: usize,
    /// Bytes of the batches in flight.
    inflight_bytes: u64,
    /// Batches it refused, and when.
    refused: HashMap<usize, Instant>,
}

impl Peer {
    fn new(conn: Connection, origin: bool) -> Peer {
        Peer {
            conn,
            origin,
            inflight: 0,
            inflight_bytes: 0,
            refused: HashMap::new(),
        }
    }
}

/// Fetches `batches` (with the bytes of each, `batch_bytes`) from `origins` (connected) and
/// the swarm of `session`, handing each received batch (every object verified against its
/// id) to `land`, which returns false when it can take no more (then the rest is left).
pub async fn fetch(
    session: &Session,
    net: &Net,
    origins: Vec<(EndpointId, Connection)>,
    batches: Vec<Vec<Hash>>,
    batch_bytes: &[u64],
    land: &mut (dyn FnMut(Vec<(Hash, bytes::Bytes)>) -> bool + Send),
    progress: &dyn Progress,
) -> Fetched {
    let counted = |n: u64| progress.inc(n);
    let counted = &counted;
    let count = batches.len();
    let mut order: Vec<usize> = (0..count).collect();
    order.shuffle(&mut rand::thread_rng());
    let origin_ids: Vec<EndpointId> = origins.iter().map(|(p, _)| *p).collect();
    let mut peers: HashMap<EndpointId, Peer> = origins
        .into_iter()
        .filter(|(p, _)| !session.is_banned(p))
        .map(|(p, conn)| (p, Peer::new(conn, true)))
        .collect();
    let mut dialer = Dialer::new(session, net, &origin_ids, false);
    // The swarm peers known now, at once: with no origin left, they are all there is.
    dialer.dial_new(0, |_| false);
    let mut done = vec![false; count];
    let mut left = count;
    let mut inflight: Vec<Option<EndpointId>> = vec![None; count];
    let mut out = Fetched::default();
    let mut delivered: HashSet<EndpointId> = HashSet::new();
    let mut requests = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_progress = Instant::now();
    let mut stopped = false;
    while left > 0 && !stopped {
        // Deal: swarm peers first, each the first batch in this downloader's order that it
        // did not refuse lately; an origin only what every swarm peer refused lately.
        let now = Instant::now();
        let swarm: Vec<EndpointId> = peers
            .iter()
            .filter(|(_, x)| !x.origin)
            .map(|(p, _)| *p)
            .collect();
        let helped = !swarm.is_empty();
        let mut dealers: Vec<EndpointId> = swarm.clone();
        dealers.extend(peers.iter().filter(|(_, x)| x.origin).map(|(p, _)| *p));
        for p in dealers {
            let origin = peers[&p].origin;
            let room = |x: &Peer| match (origin, helped) {
                (false, _) => x.inflight < LANES,
                (true, false) => {
                    x.inflight < ORIGIN_LANES
                        || (x.inflight < ORIGIN_MOST_LANES && x.inflight_bytes < ORIGIN_BYTES)
                }
                (true, true) => x.inflight < 1,
            };
            while room(&peers[&p]) {
                let fresh = |q: &EndpointId, i: usize, within: Duration| {
                    peers[q]
                        .refused
                        .get(&i)
                        .is_some_and(|t| now.duration_since(*t) < within)
                };
                let pick = order.iter().copied().find(|&i| {
                    !done[i]
                        && inflight[i].is_none()
                        && if origin {
                            swarm.iter().all(|q| fresh(q, i, TRUSTED))
                        } else {
                            !fresh(&p, i, RECHECK)
                        }
                });
                let Some(i) = pick else { break };
                inflight[i] = Some(p);
                let peer = peers.get_mut(&p).expect("known");
                peer.inflight += 1;
                peer.inflight_bytes += batch_bytes[i];
                let conn = peer.conn.clone();
                let batch = batches[i].clone();
                requests.push(async move {
                    let got =
                        tokio::time::timeout(BATCH_TIMEOUT, get_many(&conn, &batch, counted)).await;
                    (p, i, got)
                });
            }
        }
        let origins_left = peers.values().any(|x| x.origin);
        if !origins_left
            && requests.is_empty()
            && (last_progress.elapsed() > PATIENCE || (peers.is_empty() && dialer.is_idle()))
        {
            break;
        }
        tokio::select! {
            Some((p, i, got)) = requests.next() => {
                inflight[i] = None;
                // Saturating: a peer dropped and dialled again meanwhile is a new entry,
                // which did not count this request.
                if let Some(peer) = peers.get_mut(&p) {
                    peer.inflight = peer.inflight.saturating_sub(1);
                    peer.inflight_bytes = peer.inflight_bytes.saturating_sub(batch_bytes[i]);
                }
                match got {
                    Ok(Ok(blobs)) => {
                        let n: u64 = blobs.iter().map(|(_, b)| b.len() as u64).sum();
                        out.bytes += n;
                        session.count_received(&p, n);
                        delivered.insert(p);
                        done[i] = true;
                        left -= 1;
                        last_progress = Instant::now();
                        stopped = !land(blobs);
                    }
                    Ok(Err(e)) => {
                        let gone = peers.get(&p).is_none_or(|x| x.conn.close_reason().is_some());
                        let lied = matches!(e, Error::LyingPeer { .. });
                        if lied {
                            session.ban(p, format!(
                                "peer {} sent data that fails BLAKE3 verification (a batch of \
                                 {} small objects): dropped",
                                peer_name(p.as_bytes()),
                                batches[i].len()
                            ));
                        }
                        let origin = peers.get(&p).is_some_and(|x| x.origin);
                        if lied || gone || origin {
                            if let Some(peer) = peers.remove(&p) {
                                peer.conn.close(VarInt::from_u32(1), b"failed");
                                if peer.origin {
                                    out.failed_origins.push(p);
                                }
                            }
                        } else if let Some(peer) = peers.get_mut(&p) {
                            // Refused: it does not hold all of the batch yet.
                            peer.refused.insert(i, Instant::now());
                        }
                    }
                    Err(_) => {
                        if let Some(peer) = peers.remove(&p) {
                            peer.conn.close(VarInt::from_u32(1), b"too slow");
                            if peer.origin {
                                out.failed_origins.push(p);
                            }
                        }
                    }
                }
            }
            (p, _, conn) = dialer.next() => {
                if let Some(conn) = conn {
                    peers.insert(p, Peer::new(conn, false));
                }
            }
            _ = tick.tick() => {
                // New swarm peers, from gossip and the trackers; refusals grow old.
                order.retain(|i| !done[*i]);
                let swarm_count = peers.values().filter(|x| !x.origin).count();
                dialer.dial_new(swarm_count, |q| peers.contains_key(q));
            }
        }
    }
    drop(requests);
    for (_, peer) in peers {
        if !peer.origin {
            peer.conn.close(VarInt::from_u32(0), b"done");
        }
    }
    out.peers = delivered.iter().map(|p| peer_name(p.as_bytes())).collect();
    out.left = (0..count)
        .filter(|i| !done[*i])
        .map(|i| batches[i].clone())
        .collect();
    out
}
