//! One big object from every peer that has its pieces: the ticket's providers (the origins,
//! which hold it whole) and the swarm's other downloaders (which hold what they verified).
//!
//! The object is cut into about 256 pieces of 256 KiB–4 MiB (whole 16 KiB groups). Each swarm peer
//! is asked, once connected, for its bitfield (iroh-blobs' observe request: the ranges it holds,
//! then every range it adds; the scheduler hears only of pieces that became whole). It gives
//! each peer up to [`LANES`] piece requests at a time, rarest piece first (fewest holders
//! among the connected peers, ties broken at random); an origin is asked only for pieces no
//! connected swarm peer holds, one at a time once swarm peers help, so that the publisher's
//! uplink sends each piece about once and the downloaders trade the rest. When every missing
//! piece is in flight and few are missing, an idle peer may ask for an in-flight piece too
//! (the end game; never an origin for a piece a swarm peer holds).
//!
//! Every piece lands in the session's iroh-blobs store, verified per 16 KiB group against the
//! object's BLAKE3 tree by iroh-blobs before it is written; the store serves it at once to the
//! other peers, and keeps its bitfield, so an interrupted download resumes: a piece is asked
//! for without the 16 KiB groups the store already holds (of a piece in flight when the
//! process was killed, or when a request failed), so nothing verified is fetched again (after
//! a kill iroh-blobs rebuilds the entry's bitfield from its data and outboard). A peer whose data
//! fails verification is named and never asked again; one that fails otherwise is dropped
//! and may come back through the swarm. Peers are dialled by [`super::dial::Dialer`].

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
use crate::net::pieces::{fails_verification, GROUP};
use crate::progress::Progress;

use super::dial::Dialer;
use super::session::{no_source, Session};

/// Piece requests in flight per peer (an origin that other downloaders help: one).
pub const LANES: usize = 2;
/// The end game (asking a second peer for a piece in flight) begins once every missing piece
/// is in flight and at most this many are missing.
const END_GAME: usize = 8;
/// Longest one piece request may take.
const PIECE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the download waits, with nothing in flight and nobody to ask, for a peer to appear.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The piece size for an object of `size` bytes: about 256 pieces, of 256 KiB to 4 MiB.
pub fn piece_size(size: u64) -> u64 {
    (size / 256).clamp(256 << 10, 4 << 20).div_ceil(GROUP) * GROUP
}

fn piece_ranges(i: usize, piece: u64, size: u64) -> ChunkRanges {
    let start = i as u64 * piece;
    let end = (start + piece).min(size);
    ChunkRanges::from(bao_tree::ChunkNum(start / 1024)..bao_tree::ChunkNum(end.div_ceil(1024)))
}

/// The pieces that `diff` (ranges a peer added) touches.
fn touched(diff: &ChunkRanges, piece: u64, count: usize) -> std::ops::Range<usize> {
    // Boundaries alternate start, end, start, end…; an odd last one starts an open range.
    let b = diff.boundaries();
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for pair in b.chunks(2) {
        let a = pair[0].0;
        let e = pair.get(1).map_or(u64::MAX / 1024, |e| e.0);
        lo = lo.min(a * 1024 / piece);
        hi = hi.max((e * 1024).saturating_sub(1) / piece);
    }
    if lo == u64::MAX {
        return 0..0;
    }
    (lo as usize).min(count)..(hi as usize + 1).min(count)
}

/// The length of piece `i`.
fn piece_len(i: usize, piece: u64, size: u64) -> u64 {
    piece.min(size - i as u64 * piece)
}

/// Marks done the pieces `held` covers; returns their bytes.
fn mark_held(held: &ChunkRanges, done: &mut [bool], piece: u64, size: u64) -> u64 {
    let mut bytes = 0;
    for (i, d) in done.iter_mut().enumerate() {
        if !*d && held.is_superset(&piece_ranges(i, piece, size)) {
            *d = true;
            bytes += piece_len(i, piece, size);
        }
    }
    bytes
}

struct Peer {
    conn: Connection,
    origin: bool,
    /// The pieces it holds (origins: all).
    has: Vec<bool>,
    inflight: usize,
    _observer: Option<AbortOnDropHandle<()>>,
}

enum Event {
    /// Pieces a swarm peer completed since it last said.
    Have(EndpointId, Vec<usize>),
    Gone(EndpointId),
}

/// What fetching one object moved.
pub struct Fetched {
    /// Payload bytes received.
    pub bytes: u64,
    /// Peers that delivered pieces.
    pub peers: Vec<String>,
}

/// Follows a swarm peer's bitfield (its first answer, then every range it adds) and reports
/// each piece once it is whole there; says the peer is gone when the observation ends before
/// it held every piece.
fn observe(
    remote: iroh_blobs::api::remote::Remote,
    conn: Connection,
    p: EndpointId,
    hash: Hash,
    (piece, size, count): (u64, u64, usize),
    tx: tokio::sync::mpsc::Sender<Event>,
) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut s = std::pin::pin!(remote.observe(conn, ObserveRequest::new(hash)));
        let mut have = ChunkRanges::empty();
        let mut whole = vec![false; count];
        while let Some(item) = s.next().await {
            let Ok(b) = item else { break };
            let span = touched(&b.ranges, piece, count);
            have |= b.ranges;
            let new: Vec<usize> = span
                .filter(|i| !whole[*i] && have.is_superset(&piece_ranges(*i, piece, size)))
                .collect();
            if new.is_empty() {
                continue;
            }
            for i in &new {
                whole[*i] = true;
            }
            if tx.send(Event::Have(p, new)).await.is_err() {
                return;
            }
        }
        // A peer that holds the whole object (a `lode serve` of an origin or a mirror, whose
        // store answers once and ends the observation) stays a holder; failed requests drop
        // it like any other.
        if !whole.iter().all(|w| *w) {
            let _ = tx.send(Event::Gone(p)).await;
        }
    }))
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
    // What the store holds, verified (by this process, or by one that was killed: iroh-blobs
    // rebuilds the bitfield of an interrupted entry from its data and outboard on load).
    let held_now = || async {
        store
            .observe(hash)
            .await
            .map(|b| b.ranges)
            .unwrap_or_default()
    };
    let mut held = held_now().await;
    let mut done = vec![false; count];
    progress.inc(mark_held(&held, &mut done, piece, size));
    let mut inflight: Vec<Vec<EndpointId>> = vec![Vec::new(); count];
    // How many connected swarm peers hold each piece (rarest first; origins not counted).
    let mut holders: Vec<u16> = vec![0; count];
    let mut peers: HashMap<EndpointId, Peer> = HashMap::new();
    let mut delivered: HashSet<EndpointId> = HashSet::new();
    let mut bytes = 0u64;
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel::<Event>(1024);
    let mut dialer = Dialer::new(session, net, origins, true);
    let mut requests = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last_progress = Instant::now();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let mut checks = 0;
    let mut dirty = true;
    let drop_peer =
        |peers: &mut HashMap<EndpointId, Peer>, holders: &mut Vec<u16>, p: &EndpointId| {
            let peer = peers.remove(p)?;
            if !peer.origin {
                for (i, h) in peer.has.iter().enumerate() {
                    if *h {
                        holders[i] = holders[i].saturating_sub(1);
                    }
                }
            }
            Some(peer)
        };
    loop {
        if done.iter().all(|d| *d) {
            // Trust the store, not the bookkeeping: it must hold the object whole.
            held = held_now().await;
            let all =
                ChunkRanges::from(bao_tree::ChunkNum(0)..bao_tree::ChunkNum(size.div_ceil(1024)));
            if held.is_superset(&all) || checks >= 3 {
                break;
            }
            checks += 1;
            for (i, d) in done.iter_mut().enumerate() {
                *d = held.is_superset(&piece_ranges(i, piece, size));
            }
            dirty = true;
            continue;
        }
        if dirty {
            dirty = false;
            // Hand out work: swarm peers first; an origin gets only pieces no connected swarm
            // peer holds, and, once other downloaders help, one request at a time.
            let mut order: Vec<EndpointId> = peers.keys().copied().collect();
            order.sort_by_key(|p| peers[p].origin);
            let helped = peers.values().any(|p| !p.origin);
            let missing = done.iter().filter(|d| !**d).count();
            let open = (0..count)
                .filter(|i| !done[*i] && inflight[*i].is_empty())
                .count();
            let end_game = open == 0 && missing <= END_GAME;
            for p in order {
                let peer = &peers[&p];
                let lanes = if peer.origin && helped { 1 } else { LANES };
                let mut free = lanes.saturating_sub(peer.inflight);
                while free > 0 {
                    let peer = &peers[&p];
                    let mut best: Option<(usize, u16, u32)> = None;
                    for i in 0..count {
                        if done[i] || !peer.has[i] || inflight[i].contains(&p) {
                            continue;
                        }
                        let busy = !inflight[i].is_empty();
                        if busy && (!end_game || inflight[i].len() >= 2) {
                            continue;
                        }
                        if peer.origin && holders[i] > 0 {
                            continue;
                        }
                        let tie: u32 = rng.gen();
                        if best.is_none_or(|(_, bh, bt)| (holders[i], tie) < (bh, bt)) {
                            best = Some((i, holders[i], tie));
                        }
                    }
                    let Some((i, _, _)) = best else { break };
                    free -= 1;
                    inflight[i].push(p);
                    let peer = peers.get_mut(&p).expect("known");
                    peer.inflight += 1;
                    let conn = peer.conn.clone();
                    // Only the groups of the piece the store lacks: a piece begun before a
                    // kill or by a request that failed keeps what was verified of it.
                    let req = GetRequest::new(
                        hash,
                        ChunkRangesSeq::from_ranges([piece_ranges(i, piece, size) - &held]),
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
        }
        if requests.is_empty() && dialer.is_idle() && last_progress.elapsed() > PATIENCE {
            let missing = done.iter().filter(|d| !**d).count();
            return Err(no_source(missing, count));
        }
        tokio::select! {
            Some((p, i, got)) = requests.next() => {
                dirty = true;
                let failed = !matches!(got, Ok(Ok(_)));
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
                            progress.inc(piece_len(i, piece, size));
                        }
                        last_progress = Instant::now();
                    }
                    Ok(Err(e)) => {
                        let lied = matches!(
                            &e,
                            iroh_blobs::get::GetError::Decode { source, .. }
                                if fails_verification(source)
                        );
                        // A peer that left closes its connection. One that keeps it open but
                        // fails a piece of an object it claims to hold either sent bytes that
                        // fail verification or, its own copy being damaged, broke the stream
                        // off (iroh-blobs' provider checks what it reads on some paths): both
                        // are named and never asked again.
                        let left = peers
                            .get(&p)
                            .is_none_or(|x| x.conn.close_reason().is_some());
                        if let Some(peer) = drop_peer(&mut peers, &mut holders, &p) {
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
                        if let Some(peer) = drop_peer(&mut peers, &mut holders, &p) {
                            peer.conn.close(VarInt::from_u32(1), b"too slow");
                        }
                    }
                }
                if failed {
                    // What a failed request delivered before it failed was verified and
                    // stays: the piece is asked for again without it.
                    held = held_now().await;
                    progress.inc(mark_held(&held, &mut done, piece, size));
                }
            }
            (p, origin, conn) = dialer.next() => {
                let Some(conn) = conn else { continue };
                dirty = true;
                let observer = (!origin).then(|| {
                    observe(
                        store.remote().clone(),
                        conn.clone(),
                        p,
                        hash,
                        (piece, size, count),
                        ev_tx.clone(),
                    )
                });
                peers.insert(p, Peer { conn, origin, has: vec![origin; count], inflight: 0, _observer: observer });
            }
            Some(ev) = ev_rx.recv() => {
                // Take every queued event before handing out work again.
                let mut ev = Some(ev);
                while let Some(e) = ev.take().or_else(|| ev_rx.try_recv().ok()) {
                    match e {
                        Event::Have(p, new) => {
                            if let Some(peer) = peers.get_mut(&p) {
                                for i in new {
                                    if !peer.has[i] {
                                        peer.has[i] = true;
                                        holders[i] += 1;
                                        dirty = true;
                                    }
                                }
                            }
                        }
                        Event::Gone(p) => {
                            if peers.get(&p).is_some_and(|x| x.inflight == 0) {
                                drop_peer(&mut peers, &mut holders, &p);
                                dirty = true;
                            }
                        }
                    }
                }
            }
            _ = tick.tick() => {
                // New swarm peers, from gossip and the trackers.
                let swarm_count = peers.values().filter(|p| !p.origin).count();
                dialer.dial_new(swarm_count, |p| peers.contains_key(p));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_object_and_diffs_touch_only_their_pieces() {
        let size = 10 << 20;
        let piece = piece_size(size);
        assert_eq!(piece, 256 << 10);
        let count = size.div_ceil(piece) as usize;
        let all: u64 = (0..count)
            .map(|i| {
                let r = piece_ranges(i, piece, size);
                let b = r.boundaries();
                (b[1].0 - b[0].0) * 1024
            })
            .sum();
        assert_eq!(all, size);
        // One 16 KiB group in the middle of piece 3.
        let g = 3 * piece + 32 * 1024;
        let diff =
            ChunkRanges::from(bao_tree::ChunkNum(g / 1024)..bao_tree::ChunkNum(g / 1024 + 16));
        assert_eq!(touched(&diff, piece, count), 3..4);
        assert_eq!(touched(&ChunkRanges::empty(), piece, count), 0..0);
        assert_eq!(
            touched(&ChunkRanges::from(bao_tree::ChunkNum(0)..), piece, count),
            0..count
        );
        assert_eq!(piece_size(1 << 30), 4 << 20);
    }

    #[test]
    fn a_piece_partly_held_is_asked_for_without_what_is_held() {
        let size = 10 << 20;
        let piece = piece_size(size);
        let count = size.div_ceil(piece) as usize;
        let chunks = piece / 1024;
        // Piece 0 whole, the first half of piece 1, one 16 KiB group of piece 3.
        let held = ChunkRanges::from(bao_tree::ChunkNum(0)..bao_tree::ChunkNum(chunks * 3 / 2))
            | ChunkRanges::from(
                bao_tree::ChunkNum(chunks * 3 + 16)..bao_tree::ChunkNum(chunks * 3 + 32),
            );
        let mut done = vec![false; count];
        assert_eq!(mark_held(&held, &mut done, piece, size), piece);
        assert_eq!(done.iter().filter(|d| **d).count(), 1);
        assert!(done[0]);
        assert_eq!(
            piece_ranges(1, piece, size) - &held,
            ChunkRanges::from(bao_tree::ChunkNum(chunks * 3 / 2)..bao_tree::ChunkNum(chunks * 2))
        );
        let rest = piece_ranges(3, piece, size) - &held;
        assert_eq!(
            rest,
            ChunkRanges::from(bao_tree::ChunkNum(chunks * 3)..bao_tree::ChunkNum(chunks * 3 + 16))
                | ChunkRanges::from(
                    bao_tree::ChunkNum(chunks * 3 + 32)..bao_tree::ChunkNum(chunks * 4)
                )
        );
        // The last piece, shorter than the others, counts its own length.
        let last = count - 1;
        let short = size - 100;
        let all =
            ChunkRanges::from(bao_tree::ChunkNum(0)..bao_tree::ChunkNum(short.div_ceil(1024)));
        let mut done = vec![false; count];
        assert_eq!(mark_held(&all, &mut done, piece, short), short);
        assert!(done[last]);
    }
}
