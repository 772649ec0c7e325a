//! Who may fetch what: tickets checked and admitted per peer, and the gatekeeper of blob requests.

use std::collections::HashMap;
use std::sync::Arc;

use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage, RequestMode,
    ThrottleMode,
};
use iroh_blobs::{BlobsProtocol, Hash};

use crate::net::swarm::meter::Meter;
use crate::ops::access;
use crate::trust::{self, Bundle, Capability, Revoked, Rights, TrustError};

use super::state::*;

/// Decides whether a peer (by endpoint id, when the connection has one) may fetch a hash.
pub type Policy = Arc<dyn Fn(Option<[u8; 32]>, &Hash) -> bool + Send + Sync>;

/// Builds the blob protocol for `store`, serving only the raw blobs `policy` allows to the
/// asking peer.
pub fn blobs_protocol(store: &iroh_blobs::api::Store, policy: Policy) -> BlobsProtocol {
    blobs_protocol_metered(store, policy, None)
}

/// [`blobs_protocol`], with every 16 KiB group sent counted (and, under a cap, paced) by
/// `meter`: how a sharing downloader accounts for and limits its upload.
pub fn blobs_protocol_metered(
    store: &iroh_blobs::api::Store,
    policy: Policy,
    meter: Option<Arc<Meter>>,
) -> BlobsProtocol {
    let mask = EventMask {
        connected: ConnectMode::Intercept,
        get: RequestMode::Intercept,
        get_many: RequestMode::Intercept,
        observe: ObserveMode::Intercept,
        throttle: if meter.is_some() {
            ThrottleMode::Intercept
        } else {
            ThrottleMode::None
        },
        ..EventMask::DEFAULT
    };
    let (events, rx) = EventSender::channel(256, mask);
    tokio::spawn(gatekeeper(policy, meter, rx));
    BlobsProtocol::new(store, Some(events))
}

impl Shared {
    /// Checks a presented ticket (or its absence) for `peer` and `dataset`, before anything
    /// about the dataset is looked up. Returns the capability, or `None` for public access.
    pub(super) fn authorize(
        &self,
        dataset: &[u8; 32],
        ticket: Option<&[u8]>,
        peer: &[u8; 32],
        need: Rights,
    ) -> std::result::Result<(Arc<Served>, Option<Capability>), String> {
        const NO: &str = "this peer serves no public dataset with that id; present a ticket from its owner (--ticket)";
        let public = || -> Option<Arc<Served>> {
            let served = self.datasets.get(dataset)?;
            let st = served.state.lock().expect("not poisoned");
            let open = !st.private && !st.gone;
            drop(st);
            (open && !need.contains(Rights::WRITE)).then(|| served.clone())
        };
        let Some(bytes) = ticket else {
            if need.contains(Rights::WRITE) {
                return Err("pushing needs a ticket with the write right (--ticket)".into());
            }
            return public().map(|s| (s, None)).ok_or_else(|| NO.to_string());
        };
        // Reading a public dataset needs no ticket: a stale one is ignored there.
        self.check_ticket(dataset, bytes, peer, need)
            .or_else(|e| public().map(|s| (s, None)).ok_or(e))
    }

    /// The ticket checks, in order: strict decoding, the holder is the peer, the dataset
    /// matches, the chain is rooted in the dataset key and valid now (all before looking up
    /// whether the dataset is hosted here), then revocations and rights.
    pub(super) fn check_ticket(
        &self,
        dataset: &[u8; 32],
        bytes: &[u8],
        peer: &[u8; 32],
        need: Rights,
    ) -> std::result::Result<(Arc<Served>, Option<Capability>), String> {
        let bundle = Bundle::decode(bytes).map_err(|e| e.to_string())?;
        let holder = bundle.leaf().body.audience;
        if &holder != peer {
            return Err(TrustError::WrongAudience {
                holder: hex::encode(holder),
                peer: hex::encode(peer),
            }
            .to_string());
        }
        if &bundle.dataset() != dataset {
            return Err(TrustError::WrongDataset {
                got: hex::encode(bundle.dataset()),
                want: hex::encode(dataset),
            }
            .to_string());
        }
        let now = access::now();
        trust::verify_chain(&bundle, dataset, now, &Revoked::default())
            .map_err(|e| e.to_string())?;
        let served = self
            .datasets
            .get(dataset)
            .ok_or("the dataset of this ticket is not served here")?;
        let (revoked, private) = {
            let st = served.state.lock().expect("not poisoned");
            if st.gone {
                return Err("the dataset of this ticket is not served here".into());
            }
            (st.revoked.clone(), st.private)
        };
        let cap =
            trust::authorize(&bundle, dataset, peer, now, &revoked).map_err(|e| e.to_string())?;
        if need.contains(Rights::WRITE) {
            cap.require(Rights::WRITE, "pushing (it has no write right)")
                .map_err(|e| e.to_string())?;
        } else if !cap.rights.contains(Rights::READ) && !cap.rights.contains(Rights::RELAY) {
            return Err(
                TrustError::Forbidden("fetching (it has neither read nor relay right)").to_string(),
            );
        } else if private && !cap.scope.is_empty() {
            // A serving peer of a restricted dataset sees only ciphertext: it cannot tell
            // which paths a ciphertext holds, so a path-scoped ticket gets nothing.
            return Err(TrustError::Forbidden(
                "reading a restricted dataset with a path-scoped ticket (paths are encrypted)",
            )
            .to_string());
        }
        Ok((served.clone(), Some(cap)))
    }

    /// Remembers what `peer` may fetch under `cap`, for the blob gatekeeper: everything the
    /// dataset publishes (a ticket with a path scope never reaches here for reading: public
    /// datasets need no ticket, and restricted ones refuse scoped tickets).
    pub(super) fn admit(&self, served: &Served, peer: [u8; 32], cap: &Capability) {
        let mut auth = self.authorized.write().expect("not poisoned");
        let list = auth.entry(peer).or_default();
        list.retain(|a| a.dataset != served.dataset);
        list.push(Authz {
            dataset: served.dataset,
            expires: cap.expires,
        });
    }

    /// Drops every admission cached for `served`: the next request is decided again.
    pub(super) fn forget_admissions(&self, served: &Served) {
        let mut auth = self.authorized.write().expect("not poisoned");
        for list in auth.values_mut() {
            list.retain(|a| a.dataset != served.dataset);
        }
    }

    /// The gatekeeper's question: may `peer` fetch `hash`?
    pub(super) fn may_serve(&self, peer: Option<[u8; 32]>, hash: &Hash) -> bool {
        let published = |dataset: &[u8; 32], public: bool| {
            self.datasets.get(dataset).is_some_and(|served| {
                let open = {
                    let st = served.state.lock().expect("not poisoned");
                    !st.gone && (!public || !st.private)
                };
                open && served.reach.contains(hash.as_bytes())
            })
        };
        if self.datasets.keys().any(|d| published(d, true)) {
            return true;
        }
        let Some(peer) = peer else { return false };
        let now = access::now();
        let grants: Vec<[u8; 32]> = self
            .authorized
            .read()
            .expect("not poisoned")
            .get(&peer)
            .map(|list| {
                list.iter()
                    .filter(|a| now < a.expires + trust::CLOCK_SKEW)
                    .map(|a| a.dataset)
                    .collect()
            })
            .unwrap_or_default();
        grants.iter().any(|d| published(d, false))
    }
}

/// Answers the blob provider's intercepted events: each request is checked against `policy`
/// for the peer of its connection.
pub(super) async fn gatekeeper(
    policy: Policy,
    meter: Option<Arc<Meter>>,
    mut rx: tokio::sync::mpsc::Receiver<ProviderMessage>,
) {
    let mut peers: HashMap<u64, [u8; 32]> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            ProviderMessage::ClientConnected(msg) => {
                if let Some(id) = msg.endpoint_id {
                    peers.insert(msg.connection_id, *id.as_bytes());
                }
                msg.tx.send(Ok(())).await.ok();
            }
            ProviderMessage::ConnectionClosed(msg) => {
                peers.remove(&msg.connection_id);
            }
            ProviderMessage::GetRequestReceived(msg) => {
                let peer = peers.get(&msg.connection_id).copied();
                let ok = msg.request.ranges.is_blob() && policy(peer, &msg.request.hash);
                let answer = if ok {
                    Ok(())
                } else {
                    Err(AbortReason::Permission)
                };
                msg.tx.send(answer).await.ok();
            }
            ProviderMessage::GetManyRequestReceived(msg) => {
                // Many whole blobs on one stream (small objects): each must be allowed.
                let peer = peers.get(&msg.connection_id).copied();
                let ok = msg.request.hashes.iter().all(|h| policy(peer, h));
                let answer = if ok {
                    Ok(())
                } else {
                    Err(AbortReason::Permission)
                };
                msg.tx.send(answer).await.ok();
            }
            ProviderMessage::ObserveRequestReceived(msg) => {
                let peer = peers.get(&msg.connection_id).copied();
                let answer = if policy(peer, &msg.request.hash) {
                    Ok(())
                } else {
                    Err(AbortReason::Permission)
                };
                msg.tx.send(answer).await.ok();
            }
            ProviderMessage::Throttle(msg) => {
                let peer = peers.get(&msg.connection_id).copied();
                let wait = meter
                    .as_ref()
                    .map_or(std::time::Duration::ZERO, |m| m.charge(peer, msg.size));
                if wait.is_zero() {
                    msg.tx.send(Ok(())).await.ok();
                } else {
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        msg.tx.send(Ok(())).await.ok();
                    });
                }
            }
            _ => {}
        }
    }
}
