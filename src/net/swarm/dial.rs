//! The connections one swarm download asks over: its origins, and the swarm peers the
//! session's book names as they appear (gossip and the trackers), shared by the scheduler of
//! big objects' pieces ([`super::pieces`]) and that of small objects' batches
//! ([`super::small`]).
//!
//! A flood of fake peers costs at most [`MAX_CONNECTING`] connection attempts at a time,
//! each bounded by [`SWARM_CONNECT`]; at most [`MAX_PEERS`] swarm peers are connected at once;
//! a peer banned for sending bad data is never dialled again in the session.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_buffered::FuturesUnordered;
use iroh::endpoint::Connection;
use iroh::EndpointId;
use n0_future::StreamExt;

use crate::net::endpoint::Net;
use crate::net::pieces::connect_within;
use crate::ops::access::now;

use super::session::Session;

/// Connection attempts to swarm peers in flight at once.
pub const MAX_CONNECTING: usize = 8;
/// Swarm peers connected at once (besides the origins).
pub const MAX_PEERS: usize = 16;
/// Longest a connection attempt to a swarm peer may take.
pub const SWARM_CONNECT: Duration = Duration::from_secs(5);

/// A connection attempt's outcome: the peer, whether it is an origin, the connection.
pub type Dialled = (EndpointId, bool, Option<Connection>);

/// The connection attempts of one download (see the module documentation).
pub struct Dialer<'a> {
    session: &'a Session,
    net: &'a Net,
    origins: &'a [EndpointId],
    /// Peers dialled (origins included): not dialled again until forgotten.
    tried: HashSet<EndpointId>,
    connecting: FuturesUnordered<Pin<Box<dyn Future<Output = Dialled> + Send + 'a>>>,
}

impl<'a> Dialer<'a> {
    /// A dialer for a download from `origins` (never dialled as swarm peers); with `dial`,
    /// it connects to those not banned now (else the caller holds their connections).
    pub fn new(session: &'a Session, net: &'a Net, origins: &'a [EndpointId], dial: bool) -> Self {
        let mut d = Dialer {
            session,
            net,
            origins,
            tried: origins.iter().copied().collect(),
            connecting: FuturesUnordered::new(),
        };
        if dial {
            for o in origins {
                if !session.is_banned(o) {
                    d.dial(*o, true, crate::net::endpoint::CONNECT_TIMEOUT);
                }
            }
        }
        d
    }

    fn dial(&mut self, p: EndpointId, origin: bool, limit: Duration) {
        let net = self.net;
        self.connecting.push(Box::pin(async move {
            (p, origin, connect_within(net, p, limit).await.ok())
        }));
    }

    /// Dials swarm peers the book names that were not tried yet, while fewer than
    /// [`MAX_PEERS`] are connected (`connected` now) or connecting. `connected(p)` says
    /// whether `p` is connected now: a peer dropped earlier may be tried again later.
    pub fn dial_new(&mut self, swarm_connected: usize, connected: impl Fn(&EndpointId) -> bool) {
        let mut room = MAX_PEERS.saturating_sub(swarm_connected + self.connecting.len());
        for provider in self.session.book.peers(now()) {
            if room == 0 || self.connecting.len() >= MAX_CONNECTING {
                break;
            }
            let Ok(pid) = self.net.learn(&provider) else {
                continue;
            };
            if self.tried.contains(&pid) || self.session.is_banned(&pid) {
                continue;
            }
            self.tried.insert(pid);
            room -= 1;
            self.dial(pid, false, SWARM_CONNECT);
        }
        if self.tried.len() > 4 * MAX_PEERS {
            let origins = self.origins;
            self.tried.retain(|p| connected(p) || origins.contains(p));
        }
    }

    /// The next connection attempt that ended (pending while none is under way).
    pub async fn next(&mut self) -> Dialled {
        match self.connecting.next().await {
            Some(d) => d,
            None => std::future::pending().await,
        }
    }

    /// Whether no connection attempt is under way.
    pub fn is_idle(&self) -> bool {
        self.connecting.is_empty()
    }
}
