//! Finding the other peers of a dataset's swarm. Two ways, both carrying the same signed
//! announcements into a [`PeerBook`]:
//! - iroh-gossip (HyParView membership, PlumTree broadcast) on one topic per dataset,
//!   bootstrapped from the ticket's providers: every sharing peer broadcasts its
//!   announcement every [`ANNOUNCE_EVERY`], and every member hears the others';
//! - the tracker answer of serving peers: `lode serve` (an origin, a mirror) is a member of the
//!   topics of the public datasets it serves and hands out the announcements it heard
//!   (`Peers` on `lode/2`), so a newcomer learns the swarm at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use iroh::EndpointId;
use iroh_gossip::api::Event;
use iroh_gossip::net::Gossip;
use iroh_gossip::proto::TopicId;
use n0_future::task::AbortOnDropHandle;
use n0_future::StreamExt;

use crate::error::{Error, Result};
use crate::net::endpoint::Net;
use crate::net::proto::{self, Request, Response};
use crate::ops::access::now;

use super::announce::{Announcement, PeerBook};

/// How often a sharing peer announces itself on its dataset's topic.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// How often a downloader asks its ticket's providers for the peers they heard.
pub const TRACKER_EVERY: Duration = Duration::from_secs(2);
/// Gossip messages taken per second from one neighbour (more are dropped unread).
const NEIGHBOUR_RATE: u32 = 32;

/// The gossip topic of a dataset's swarm.
pub fn topic(dataset: &[u8; 32]) -> TopicId {
    let mut h = blake3::Hasher::new_derive_key("lode swarm topic v1");
    h.update(dataset);
    TopicId::from_bytes(*h.finalize().as_bytes())
}

/// Starts the gossip actor on `net`'s endpoint (accept its ALPN, `iroh_gossip::ALPN`, on the
/// endpoint's router). Messages are at most 4 KiB; an announcement is far smaller.
pub fn spawn_gossip(net: &Net) -> Gossip {
    Gossip::builder().spawn(net.endpoint.clone())
}

/// A membership of one dataset's topic: its tasks end when it is dropped.
pub struct Membership {
    _tasks: Vec<AbortOnDropHandle<()>>,
}

/// Joins `book`'s dataset topic (through `bootstrap`), files the announcements heard there in
/// `book`, and with `announce` broadcasts this endpoint's own every [`ANNOUNCE_EVERY`].
pub async fn join(
    gossip: &Gossip,
    net: &Net,
    key: &SigningKey,
    book: Arc<PeerBook>,
    bootstrap: Vec<EndpointId>,
    announce: bool,
) -> Result<Membership> {
    let dataset = book.dataset();
    let sub = gossip
        .subscribe(topic(&dataset), bootstrap)
        .await
        .map_err(|e| Error::Net(format!("cannot join the swarm: {e}")))?;
    let (sender, mut receiver) = sub.split();
    let mut tasks = Vec::new();
    tasks.push(AbortOnDropHandle::new(tokio::spawn(async move {
        let mut per_neighbour: HashMap<EndpointId, (Instant, u32)> = HashMap::new();
        while let Some(ev) = receiver.next().await {
            let Ok(Event::Received(msg)) = ev else {
                continue;
            };
            let at = Instant::now();
            let slot = per_neighbour.entry(msg.delivered_from).or_insert((at, 0));
            if at.duration_since(slot.0) >= Duration::from_secs(1) {
                *slot = (at, 0);
            }
            slot.1 += 1;
            if slot.1 > NEIGHBOUR_RATE {
                continue;
            }
            if per_neighbour.len() > 1024 {
                per_neighbour.retain(|_, (t, _)| at.duration_since(*t) < Duration::from_secs(1));
            }
            book.offer(&msg.content, now());
        }
    })));
    if announce {
        let (key, net) = (key.clone(), net.clone());
        tasks.push(AbortOnDropHandle::new(tokio::spawn(async move {
            loop {
                let signed = Announcement::sign(&key, dataset, net.provider(), now());
                let _ = sender.broadcast(signed.into()).await;
                tokio::time::sleep(ANNOUNCE_EVERY).await;
            }
        })));
    }
    Ok(Membership { _tasks: tasks })
}

/// Asks `providers` (serving peers of the dataset) every [`TRACKER_EVERY`] for the peers they
/// heard, filing the answers in `book`; ends when dropped. Each request is bounded in time.
pub fn poll_trackers(
    net: &Net,
    providers: Vec<EndpointId>,
    ticket: Option<Vec<u8>>,
    book: Arc<PeerBook>,
) -> AbortOnDropHandle<()> {
    let net = net.clone();
    AbortOnDropHandle::new(tokio::spawn(async move {
        let req = proto::encode(&Request::Peers {
            dataset: book.dataset(),
            ticket,
        });
        loop {
            for id in &providers {
                let answer = crate::net::endpoint::exchange(
                    &net,
                    *id,
                    proto::ALPN,
                    &req,
                    proto::MAX_MESSAGE,
                    Duration::from_secs(5),
                )
                .await;
                if let Ok(Ok(Response::Peers(list))) = answer.map(|b| proto::decode::<Response>(&b))
                {
                    let t = now();
                    for signed in list.iter().take(super::announce::MAX_PEERS) {
                        book.offer(signed, t);
                    }
                }
            }
            tokio::time::sleep(TRACKER_EVERY).await;
        }
    }))
}
