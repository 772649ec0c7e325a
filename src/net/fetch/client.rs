//! The network client: one ticket's providers, ref listings, and downloads over iroh-blobs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, VarInt};
use iroh::EndpointId;
use iroh_blobs::api::downloader::{DownloadOptions, DownloadProgressItem, SplitStrategy};
use iroh_blobs::Hash;
use n0_future::{BufferedStreamExt, StreamExt};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::keys::Home;
use crate::net::endpoint::CONNECT_TIMEOUT;
use crate::net::endpoint::{bind, peer_name, Net, NetOptions};
use crate::net::pieces;
use crate::net::proto::{self, Listing, Request, Response};
use crate::ops::access;
use crate::ops::graph::{head_refs, Refs};
use crate::progress::Progress;
use crate::ticket::Ticket;
use crate::trust::{self, Bundle, Revocation, SignedHead};

/// What a fetch moved.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FetchReport {
    /// The remote `main` commit, if the dataset has one.
    pub head: Option<String>,
    /// Objects received (already-present objects are not counted).
    pub objects: u64,
    /// Payload bytes received over the network.
    pub bytes: u64,
    pub seconds: f64,
    /// Endpoint ids (short) of the peers that answered.
    pub peers: Vec<String>,
    /// What moved to and from each swarm peer, when the download took part in a swarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<crate::net::swarm::session::SwarmReport>,
}

/// What a provider publishes for a dataset, verified: the refs of a head signed by a writer,
/// and the revocations (a superset of those the head lists).
#[derive(Debug, Clone)]
pub struct Published {
    pub refs: Refs,
    pub head: SignedHead,
    pub revocations: Vec<Revocation>,
    /// The provider that answered.
    pub peer: String,
}

/// The order in which the downloader asks providers for one object: the providers that
/// answer, rotated by the object's hash so that many objects spread evenly over them, then
/// those that did not answer.
#[derive(Debug, Clone)]
pub(super) struct Spread {
    live: Vec<EndpointId>,
    dead: Vec<EndpointId>,
}

impl iroh_blobs::api::downloader::ContentDiscovery for Spread {
    fn find_providers(
        &self,
        content: iroh_blobs::HashAndFormat,
    ) -> n0_future::stream::Boxed<EndpointId> {
        let mut order = self.live.clone();
        if !order.is_empty() {
            let k = content.hash.as_bytes()[0] as usize % order.len();
            order.rotate_left(k);
        }
        order.extend(self.dead.iter().copied());
        n0_future::stream::iter(order).boxed()
    }
}

/// A connected client for one ticket.
pub struct Client {
    pub(super) net: Net,
    pub(super) ticket: Ticket,
    /// The capability ticket presented to providers.
    pub(super) cap: Option<Bundle>,
    pub(super) providers: Vec<EndpointId>,
    /// Providers that failed to answer: tried last from then on.
    pub(super) dead: HashSet<EndpointId>,
    pub(super) peers: BTreeSet<String>,
    /// Whether `net` was bound for this client (and is closed with it).
    pub(super) owned: bool,
    /// iroh-blobs connections kept open for batched requests of small objects.
    pub(super) conns: HashMap<EndpointId, Connection>,
    /// Providers that failed a batched request (gone, or a lode that refuses `GetMany`):
    /// not asked for batches again.
    pub(super) no_batch: HashSet<EndpointId>,
    /// The swarm session of this download, when it takes part in one.
    pub(super) swarm: Option<crate::net::swarm::session::Session>,
}

impl Client {
    /// Binds an endpoint with the device key and learns the ticket's provider addresses.
    pub async fn new(
        home: &Home,
        ticket: &Ticket,
        cap: Option<Bundle>,
        opts: &NetOptions,
    ) -> Result<Client> {
        let key = home.device_key()?;
        let net = bind(&key, opts).await?;
        let mut client = Client::with_net(net, ticket, cap)?;
        client.owned = true;
        Ok(client)
    }

    /// Uses an existing endpoint (a serving peer fetching a push).
    pub fn with_net(net: Net, ticket: &Ticket, cap: Option<Bundle>) -> Result<Client> {
        let providers = ticket
            .providers
            .iter()
            .map(|p| net.learn(p))
            .collect::<Result<_>>()?;
        Ok(Client {
            net,
            ticket: ticket.clone(),
            cap,
            providers,
            dead: HashSet::new(),
            peers: BTreeSet::new(),
            owned: false,
            conns: HashMap::new(),
            no_batch: HashSet::new(),
            swarm: None,
        })
    }

    /// Asks the providers, in order, for the dataset's signed head; returns the first valid
    /// answer.
    pub async fn list_refs(&mut self) -> Result<Published> {
        let mut failures = Vec::new();
        for id in self.providers.clone() {
            let name = peer_name(id.as_bytes());
            match self.list_refs_from(id).await {
                Ok(refs) => {
                    self.peers.insert(name);
                    return Ok(refs);
                }
                Err(e) => {
                    if matches!(e, Error::Unreachable { .. }) {
                        self.dead.insert(id);
                    }
                    failures.push(e)
                }
            }
        }
        match failures.len() {
            1 => Err(failures.remove(0)),
            _ => Err(Error::NoProvider(
                failures
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    pub(super) async fn list_refs_from(&self, id: EndpointId) -> Result<Published> {
        let req = Request::ListRefs {
            dataset: self.ticket.dataset,
            ticket: self.cap.as_ref().map(Bundle::encode),
        };
        let peer = peer_name(id.as_bytes());
        let listing = match self.request(id, &req, CONNECT_TIMEOUT).await? {
            Response::Refs(listing) => listing,
            Response::Denied(msg) => return Err(Error::NotAuthorized { peer, msg }),
            Response::Error(msg) | Response::Rejected(msg) => {
                return Err(Error::Peer { peer, msg })
            }
            Response::Pushed { .. } | Response::Revoked { .. } | Response::Peers(_) => {
                return Err(Error::LyingPeer {
                    peer,
                    msg: "answered a ref listing with something else".into(),
                })
            }
        };
        verify_listing(&listing, &self.ticket.dataset, &peer)
    }

    /// Subscribes to the dataset at its first provider that answers: returns the verified
    /// listing as soon as its head's sequence number exceeds `seq`, or after about `wait`
    /// seconds with the current one.
    pub async fn wait_head(&mut self, seq: u64, wait: u64) -> Result<Published> {
        let req = Request::WaitHead {
            dataset: self.ticket.dataset,
            ticket: self.cap.as_ref().map(Bundle::encode),
            seq,
            wait,
        };
        let mut last = Error::NoProvider("no provider".into());
        for id in self.providers.clone() {
            let peer = peer_name(id.as_bytes());
            let answer = self.request(id, &req, Duration::from_secs(wait + 15)).await;
            match answer {
                Ok(Response::Refs(listing)) => {
                    return verify_listing(&listing, &self.ticket.dataset, &peer)
                }
                Ok(Response::Denied(msg)) => last = Error::NotAuthorized { peer, msg },
                Ok(other) => {
                    last = Error::Peer {
                        peer,
                        msg: format!("no subscription ({other:?})"),
                    }
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Sends one `lode/2` request to provider `id` and waits up to `wait` for the answer.
    pub async fn request(&self, id: EndpointId, req: &Request, wait: Duration) -> Result<Response> {
        let bytes = crate::net::endpoint::exchange(
            &self.net,
            id,
            proto::ALPN,
            &proto::encode(req),
            proto::MAX_MESSAGE,
            wait,
        )
        .await?;
        proto::decode::<Response>(&bytes).map_err(|e| Error::LyingPeer {
            peer: peer_name(id.as_bytes()),
            msg: format!("malformed response: {e}"),
        })
    }

    /// The providers in ticket order, split into those that answered (or were not tried)
    /// and those that did not answer.
    pub(super) fn by_liveness(&self) -> (Vec<EndpointId>, Vec<EndpointId>) {
        self.providers
            .iter()
            .copied()
            .partition(|p| !self.dead.contains(p))
    }

    /// Returns the providers' endpoint ids, in ticket order.
    pub fn providers(&self) -> &[EndpointId] {
        &self.providers
    }

    /// Fetches the whole blobs `hashes`, verified as they stream, with one `GetMany` request
    /// per provider (the providers that answer share the batch by hash) over connections
    /// kept for the next batch: one stream for many objects instead of one request each.
    /// Fails if any provider fails, which is then not asked for batches again (the caller
    /// falls back to [`Client::download`], which tries each object's providers in turn and
    /// names a peer that lies).
    pub(super) async fn get_many(
        &mut self,
        hashes: &[Hash],
        progress: &dyn Progress,
    ) -> Result<Vec<(Hash, bytes::Bytes)>> {
        let conns = self.batch_conns().await?;
        let mut shares: Vec<Vec<Hash>> = vec![Vec::new(); conns.len()];
        for h in hashes {
            shares[h.as_bytes()[0] as usize % conns.len()].push(*h);
        }
        let counted = |n: u64| progress.inc(n);
        let asks = conns.iter().zip(&shares).filter(|(_, s)| !s.is_empty());
        let results = n0_future::join_all(asks.map(|((p, conn), share)| async move {
            (*p, pieces::get_many(conn, share, &counted).await)
        }))
        .await;
        let mut out = Vec::with_capacity(hashes.len());
        let mut failed = None;
        for (p, got) in results {
            match got {
                Ok(blobs) => {
                    self.batch_served(p);
                    out.extend(blobs);
                }
                Err(e) => {
                    self.batch_failed(p);
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The providers that answer batched (`GetMany`) requests, each with a connection kept
    /// for the next batch (made now where there is none). Fails when there is none, or when
    /// one cannot be reached (it is then not asked for batches again).
    pub(super) async fn batch_conns(&mut self) -> Result<Vec<(EndpointId, Connection)>> {
        let live: Vec<EndpointId> = self
            .by_liveness()
            .0
            .into_iter()
            .filter(|p| !self.no_batch.contains(p))
            .collect();
        if live.is_empty() {
            return Err(Error::NoProvider(
                "no provider answers batched requests".into(),
            ));
        }
        let mut out = Vec::with_capacity(live.len());
        for p in live {
            let conn = match self.conns.get(&p) {
                Some(c) if c.close_reason().is_none() => c.clone(),
                _ => match pieces::connect(&self.net, p).await {
                    Ok(c) => {
                        self.conns.insert(p, c.clone());
                        c
                    }
                    Err(e) => {
                        self.no_batch.insert(p);
                        return Err(e);
                    }
                },
            };
            out.push((p, conn));
        }
        Ok(out)
    }

    /// Records that provider `p` served a batched request.
    pub(super) fn batch_served(&mut self, p: EndpointId) {
        self.peers.insert(peer_name(p.as_bytes()));
    }

    /// Records that provider `p` failed a batched request: its connection is closed and it
    /// is not asked for batches again.
    pub(super) fn batch_failed(&mut self, p: EndpointId) {
        self.no_batch.insert(p);
        if let Some(c) = self.conns.remove(&p) {
            c.close(VarInt::from_u32(0), b"failed");
        }
    }

    /// Downloads `hashes` into `store` from all providers; on failure, finds out which peer
    /// sent bad data, if one did.
    pub(super) async fn download(
        &mut self,
        store: &iroh_blobs::api::Store,
        hashes: Vec<Hash>,
        progress: &dyn Progress,
        bytes: &mut u64,
    ) -> Result<()> {
        // Bytes already held (a resumed transfer), asked for concurrently: the downloader's
        // progress counts them too.
        let before: u64 = n0_future::stream::iter(hashes.iter().copied())
            .map(|h| async move {
                store
                    .remote()
                    .local(h)
                    .await
                    .map(|l| l.local_bytes())
                    .unwrap_or(0)
            })
            .buffered_unordered(32)
            .collect::<Vec<u64>>()
            .await
            .into_iter()
            .sum();
        let dl = store.downloader(&self.net.endpoint);
        let (live, dead) = self.by_liveness();
        let spread = Spread { live, dead };
        let opts = DownloadOptions::new(hashes.clone(), spread, SplitStrategy::None);
        let mut stream = dl
            .download_with_opts(opts)
            .stream()
            .await
            .map_err(|e| Error::Net(format!("downloader: {e}")))?;
        let mut last = 0u64;
        let mut errored = false;
        let mut tried = HashSet::new();
        let mut failed = HashSet::new();
        while let Some(item) = stream.next().await {
            match item {
                DownloadProgressItem::Progress(total) => {
                    progress.inc(total.saturating_sub(last));
                    last = total.max(last);
                }
                DownloadProgressItem::TryProvider { id, .. } => {
                    tried.insert(id);
                }
                DownloadProgressItem::ProviderFailed { id, .. } => {
                    failed.insert(id);
                }
                DownloadProgressItem::DownloadError | DownloadProgressItem::Error(_) => {
                    errored = true;
                }
                _ => {}
            }
        }
        *bytes += last.saturating_sub(before);
        for id in tried.difference(&failed) {
            self.peers.insert(peer_name(id.as_bytes()));
        }
        if !errored && failed.is_empty() {
            return Ok(());
        }
        let mut missing = Vec::new();
        for h in &hashes {
            if !store.has(*h).await.unwrap_or(false) {
                missing.push(*h);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.diagnose(store, missing[0]).await)
    }

    /// Fetches one missing blob from each provider in turn to name the one that lies.
    pub(super) async fn diagnose(&self, store: &iroh_blobs::api::Store, hash: Hash) -> Error {
        let mut reasons = Vec::new();
        for id in &self.providers {
            let peer = peer_name(id.as_bytes());
            let conn = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                self.net.endpoint.connect(*id, iroh_blobs::ALPN),
            )
            .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    reasons.push(format!("{peer}: {e}"));
                    continue;
                }
                Err(_) => {
                    reasons.push(format!("{peer}: no answer"));
                    continue;
                }
            };
            match store.remote().fetch(conn.clone(), hash).await {
                Ok(_) => return Error::Net(format!("object {hash} arrived only on a second try")),
                Err(iroh_blobs::get::GetError::Decode { source, .. }) => {
                    return Error::LyingPeer {
                        peer,
                        msg: format!(
                            "object {} failed BLAKE3 verification ({source})",
                            hash.to_hex()
                        ),
                    };
                }
                Err(e) => reasons.push(format!("{peer}: {e}")),
            }
        }
        Error::NoProvider(format!(
            "object {} could not be fetched: {}",
            hash.to_hex(),
            reasons.join("; ")
        ))
    }

    pub(super) fn report(
        &self,
        head: Option<ObjectId>,
        objects: u64,
        bytes: u64,
        start: Instant,
    ) -> FetchReport {
        FetchReport {
            head: head.map(|h| h.to_hex()),
            objects,
            bytes,
            seconds: start.elapsed().as_secs_f64(),
            peers: self.peers.iter().cloned().collect(),
            swarm: None,
        }
    }

    /// Closes the client's connections, and its endpoint if it bound it, and waits until
    /// the providers know (iroh's graceful close). Dropping the client closes it too,
    /// without waiting (see the `Drop` impl).
    pub async fn close(mut self) {
        self.close_conns();
        if std::mem::take(&mut self.owned) {
            self.net.endpoint.close().await;
        }
    }

    fn close_conns(&mut self) {
        for (_, c) in self.conns.drain() {
            c.close(VarInt::from_u32(0), b"done");
        }
    }
}

/// A client dropped unclosed (an early return on an error, a cancelled task) closes its
/// connections at once and its endpoint, if it bound it, on a task of the running tokio
/// runtime (an async close cannot run in `drop`): gracefully as long as the runtime lives,
/// aborted by iroh when the runtime ends first or there is none.
impl Drop for Client {
    fn drop(&mut self) {
        self.close_conns();
        if !std::mem::take(&mut self.owned) || self.net.endpoint.is_closed() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let endpoint = self.net.endpoint.clone();
            rt.spawn(async move { endpoint.close().await });
        }
    }
}

/// Checks a provider's listing: every revocation signed by the dataset owner, the head signed
/// by a writer (not one whose ticket is revoked), and every revocation the head lists present.
pub fn verify_listing(listing: &Listing, dataset: &[u8; 32], peer: &str) -> Result<Published> {
    let lying = |msg: String| Error::LyingPeer {
        peer: peer.to_string(),
        msg,
    };
    if listing.revocations.len() > trust::MAX_REVOCATIONS {
        return Err(lying("too many revocations".into()));
    }
    let revocations = listing
        .revocations
        .iter()
        .map(|b| Revocation::decode(b, dataset))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| lying(format!("serves a bad revocation: {e}")))?;
    let revoked = access::revoked_set(&revocations);
    let head = SignedHead::decode(&listing.head, dataset, &revoked, Some(access::now()))
        .map_err(|e| lying(format!("serves a head that does not verify: {e}")))?;
    let have: HashSet<[u8; 32]> = revocations.iter().map(Revocation::id).collect();
    if let Some(missing) = head.body.revocations.iter().find(|id| !have.contains(*id)) {
        return Err(lying(format!(
            "withholds revocation {} that its head lists",
            hex::encode(missing)
        )));
    }
    Ok(Published {
        refs: head_refs(Some(&head)),
        head,
        revocations,
        peer: peer.to_string(),
    })
}
