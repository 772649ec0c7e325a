//! One big object from every peer that has its pieces: the ticket's providers (the origins,
//! which hold it whole) and the swarm's other downloaders (which hold what they verified).
//!
//! The object is cut into pieces of 1–8 MiB (a whole number of 16 KiB groups). Each swarm peer
//! is asked, once connected, for its bitfield (iroh-blobs' observe request: the ranges it holds,
//! then every range it adds). The scheduler gives each peer up to [`LANES`] piece requests at
//! a time, rarest piece first (fewest holders among the connected peers, ties broken at
//! random); an origin is asked only for pieces no connected swarm peer holds, so that the
//! publisher's uplink sends each piece about once and the downloaders trade the rest. When
//! every missing piece is in flight, idle peers request in-flight pieces too (the end game).
//!
//! Every piece lands in the session's iroh-blobs store, verified per 16 KiB group against the
//! object's BLAKE3 tree by iroh-blobs before it is written; the store serves it at once to the
//! other peers, and keeps its bitfield, so an interrupted download resumes. A peer whose data
//! fails verification is named and never asked again; one that fails otherwise is dropped
//! and may come back through the swarm. A flood of fake peers costs at most
//! [`MAX_CONNECTING`] connection attempts at a time, each bounded by [`SWARM_CONNECT`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_buffered::FuturesUnordered;
use iroh::endpoint::{Connection, VarInt};
use iroh::EndpointId;
use iroh_blobs::protocol::{ChunkRanges, ChunkRangesSeq, GetRequest, ObserveRequest};
use iroh_blobs::Hash;
use n0_future::task::AbortOnDropHandle;
use n0_future::StreamExt;
use rand::Rng;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::net::endpoint::{peer_name, Net};
use crate::net::pieces::GROUP;
use crate::ops::access::now;
use crate::progress::Progress;

use super::session::{no_source, Session};

/// Piece requests in flight per peer.
pub const LANES: usize = 2;
/// Connection attempts to swarm peers in flight at once.
pub const MAX_CONNECTING: usize = 8;
/// Swarm peers connected at once (besides the origins).
pub const MAX_PEERS: usize = 16;
/// Longest a connection attempt to a swarm peer may take.
pub const SWARM_CONNECT: Duration = Duration::from_secs(5);
/// Longest one piece request may take.
const PIECE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the download waits, with nothing in flight and nobody to ask, for a peer to appear.
const PATIENCE: Duration = Duration::from_secs(30);

/// The piece size for an object of `size` bytes.
pub fn piece_size(size: u64) -> u64 {
    (size / 256).clamp(1 << 20, 8 << 20).div_ceil(GROUP) * GROUP
}

fn piece_ranges(i: usize, piece: u64, size: u64) -> ChunkRanges {
    let start = i as u64 * piece;
    let end = (start + piece).min(size);
    ChunkRanges::from(bao_tree::ChunkNum(start / 1024)..bao_tree::ChunkNum(end.div_ceil(1024)))
}

struct Peer {
    conn: Connection,
    origin: bool,
    /// What it holds (origins: everything).
    have: ChunkRanges,
    inflight: usize,
    _observer: Option<AbortOnDropHandle<()>>,
}

enum Event {
    Have(EndpointId, ChunkRanges),
    Gone(EndpointId),
}

/// What fetching one object moved.
pub struct Fetched {
    /// Payload bytes received.
    pub bytes: u64,
    /// Peers that delivered pieces.
    pub peers: Vec<String>,
}

/// Fetches object `id` (`size` bytes) into the session's store from `origins` and the swarm;
/// returns once the store holds it complete (verified).
pub async fn fetch(
    session: &Session,
    net: &Net,
    origins: &[EndpointId],
    id: ObjectId,
    size: u64,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let hash = Hash::from_bytes(id.0);
    let piece = piece_size(size);
    let count = size.div_ceil(piece).max(1) as usize;
    let store = &session.store;
    let local = store
        .observe(hash)
        .await
        .map(|b| b.ranges)
        .unwrap_or_default();
    let mut done: Vec<bool> = (0..count)
        .map(|i| local.is_superset(&piece_ranges(i, piece, size)))
        .collect();
    let already: u64 = (0..count)
        .filter(|i| done[*i])
        .map(|i| (piece).min(size - i as u64 * piece))
        .sum();
    progress.inc(already);
    let mut inflight: Vec<Vec<EndpointId>> = vec![Vec::new(); count];
    let mut peers: HashMap<EndpointId, Peer> = HashMap::new();
    let mut tried: HashSet<EndpointId> = HashSet::new();
    let mut delivered: HashSet<EndpointId> = HashSet::new();
    let mut bytes = 0u64;
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel::<Event>(256);
    let mut connecting = FuturesUnordered::new();
    let connect = |p: EndpointId, origin: bool, limit: Duration| async move {
        let c = tokio::time::timeout(limit, net.endpoint.connect(p, iroh_blobs::ALPN)).await;
        (p, origin, c.ok().and_then(|r| r.ok()))
    };
    for o in origins {
        if !session.is_banned(o) {
            tried.insert(*o);
            connecting.push(connect(*o, true, crate::net::endpoint::CONNECT_TIMEOUT));
        }
    }
    let mut requests = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last_progress = Instant::now();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let mut checks = 0;
    loop {
        if done.iter().all(|d| *d) {
            // Trust the store, not the bookkeeping: it must hold the object whole.
            let whole = store
                .observe(hash)
                .await
                .map(|b| b.ranges)
                .unwrap_or_default();
            let all =
                ChunkRanges::from(bao_tree::ChunkNum(0)..bao_tree::ChunkNum(size.div_ceil(1024)));
            if whole.is_superset(&all) || checks >= 3 {
                break;
            }
            checks += 1;
            for (i, d) in done.iter_mut().enumerate() {
                *d = whole.is_superset(&piece_ranges(i, piece, size));
            }
            continue;
        }
        // Hand out work: swarm peers first, so that origins get only what nobody else holds.
        let mut order: Vec<EndpointId> = peers.keys().copied().collect();
        order.sort_by_key(|p| peers[p].origin);
        let swarm_peers: Vec<EndpointId> =
            order.iter().copied().filter(|p| !peers[p].origin).collect();
        let holders = |i: usize, peers: &HashMap<EndpointId, Peer>| {
            let r = piece_ranges(i, piece, size);
            swarm_peers
                .iter()
                .filter(|p| peers[*p].have.is_superset(&r))
                .count()
        };
        for p in order {
            while peers[&p].inflight < LANES {
                let origin = peers[&p].origin;
                let has = |i: usize| peers[&p].have.is_superset(&piece_ranges(i, piece, size));
                let mut best: Option<(usize, usize, u32)> = None;
                let open_left = (0..count).any(|i| !done[i] && inflight[i].is_empty());
                for i in 0..count {
                    if done[i] || !has(i) || inflight[i].contains(&p) {
                        continue;
                    }
                    // The end game: once every missing piece is in flight, a piece may be
                    // asked of a second peer.
                    if !inflight[i].is_empty() && (open_left || inflight[i].len() >= 2) {
                        continue;
                    }
                    let h = holders(i, &peers);
                    if origin && h > 0 && open_left {
                        continue;
                    }
                    let tie: u32 = rng.gen();
                    if best.is_none_or(|(_, bh, bt)| (h, tie) < (bh, bt)) {
                        best = Some((i, h, tie));
                    }
                }
                let Some((i, _, _)) = best else { break };
                inflight[i].push(p);
                let peer = peers.get_mut(&p).expect("known");
                peer.inflight += 1;
                let conn = peer.conn.clone();
                let req = GetRequest::new(
                    hash,
                    ChunkRangesSeq::from_ranges([piece_ranges(i, piece, size)]),
                );
                requests.push(async move {
                    let got = tokio::time::timeout(
                        PIECE_TIMEOUT,
                        store.remote().execute_get(conn, req).complete(),
                    )
                    .await;
                    (p, i, got)
                });
            }
        }
        if requests.is_empty() && connecting.is_empty() && last_progress.elapsed() > PATIENCE {
            let missing = done.iter().filter(|d| !**d).count();
            return Err(no_source(missing, count));
        }
        tokio::select! {
            Some((p, i, got)) = requests.next() => {
                inflight[i].retain(|q| *q != p);
                if let Some(peer) = peers.get_mut(&p) {
                    peer.inflight -= 1;
                }
                match got {
                    Ok(Ok(stats)) => {
                        let n = stats.payload_bytes_read;
                        bytes += n;
                        session.count_received(&p, n);
                        delivered.insert(p);
                        if !done[i] {
                            done[i] = true;
                            progress.inc(piece.min(size - i as u64 * piece));
                        }
                        last_progress = Instant::now();
                    }
                    Ok(Err(e)) => {
                        let lied = matches!(
                            &e,
                            iroh_blobs::get::GetError::Decode { source, .. }
                                if matches!(
                                    source,
                                    iroh_blobs::get::fsm::DecodeError::ParentHashMismatch { .. }
                                        | iroh_blobs::get::fsm::DecodeError::LeafHashMismatch { .. }
                                )
                        );
                        // A peer that left closes its connection. One that keeps it open but
                        // fails a piece of an object it claims to hold either sent bytes that
                        // fail verification or, its own copy being damaged, broke the stream
                        // off (iroh-blobs' provider checks what it reads on some paths): both
                        // are named and never asked again.
                        let left = peers
                            .get(&p)
                            .is_none_or(|x| x.conn.close_reason().is_some());
                        if let Some(peer) = peers.remove(&p) {
                            peer.conn.close(VarInt::from_u32(1), b"failed");
                        }
                        if lied || !left {
                            let what = if lied {
                                "sent data that fails BLAKE3 verification"
                            } else {
                                "broke off a piece it claims to hold"
                            };
                            session.ban(p, format!(
                                "peer {} {what} (object {}, piece {i}): dropped",
                                peer_name(p.as_bytes()),
                                id.short()
                            ));
                        }
                    }
                    Err(_) => {
                        if let Some(peer) = peers.remove(&p) {
                            peer.conn.close(VarInt::from_u32(1), b"too slow");
                        }
                    }
                }
            }
            Some((p, origin, conn)) = connecting.next() => {
                let Some(conn) = conn else { continue };
                let observer = if origin {
                    None
                } else {
                    let (tx, conn2) = (ev_tx.clone(), conn.clone());
                    let remote = store.remote().clone();
                    Some(AbortOnDropHandle::new(tokio::spawn(async move {
                        let mut s = std::pin::pin!(remote.observe(conn2, ObserveRequest::new(hash)));
                        while let Some(item) = s.next().await {
                            let ev = match item {
                                Ok(b) => Event::Have(p, b.ranges),
                                Err(_) => Event::Gone(p),
                            };
                            let gone = matches!(ev, Event::Gone(_));
                            if tx.send(ev).await.is_err() || gone {
                                return;
                            }
                        }
                        let _ = tx.send(Event::Gone(p)).await;
                    })))
                };
                let have = if origin {
                    ChunkRanges::from(bao_tree::ChunkNum(0)..)
                } else {
                    ChunkRanges::empty()
                };
                peers.insert(p, Peer { conn, origin, have, inflight: 0, _observer: observer });
            }
            Some(ev) = ev_rx.recv() => match ev {
                Event::Have(p, ranges) => {
                    if let Some(peer) = peers.get_mut(&p) {
                        peer.have |= ranges;
                    }
                }
                Event::Gone(p) => {
                    if peers.get(&p).is_some_and(|x| x.inflight == 0) {
                        peers.remove(&p);
                    }
                }
            },
            _ = tick.tick() => {
                // New swarm peers, from gossip and the trackers.
                let swarm_count = peers.values().filter(|p| !p.origin).count();
                let mut room = MAX_PEERS.saturating_sub(swarm_count + connecting.len());
                for provider in session.book.peers(now()) {
                    if room == 0 || connecting.len() >= MAX_CONNECTING {
                        break;
                    }
                    let Ok(pid) = net.learn(&provider) else { continue };
                    if tried.contains(&pid) || session.is_banned(&pid) {
                        continue;
                    }
                    tried.insert(pid);
                    room -= 1;
                    connecting.push(connect(pid, false, SWARM_CONNECT));
                }
                // A swarm peer dropped earlier may be tried again later.
                if tried.len() > 4 * MAX_PEERS {
                    tried.retain(|p| peers.contains_key(p) || origins.contains(p));
                }
            }
        }
    }
    for (_, peer) in peers {
        peer.conn.close(VarInt::from_u32(0), b"done");
    }
    Ok(Fetched {
        bytes,
        peers: delivered.iter().map(|p| peer_name(p.as_bytes())).collect(),
    })
}

/// Moves a complete object from the session's store to `target` (its place in the object
/// store; the rename is atomic), where the session's store goes on serving it from.
pub async fn export(session: &Session, id: ObjectId, target: &std::path::Path) -> Result<()> {
    use iroh_blobs::api::blobs::{ExportMode, ExportOptions};
    session
        .store
        .export_with_opts(ExportOptions {
            hash: Hash::from_bytes(id.0),
            mode: ExportMode::TryReference,
            target: target.to_path_buf(),
        })
        .await
        .map_err(|e| Error::Net(format!("cannot export object {id}: {e}")))?;
    Ok(())
}
