//! A running registry: its endpoint, request handling, forwarding and anti-entropy with peer registries.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler, Router};

use crate::catalog::{Approval, Holding, Notice};
use crate::error::{Error, Result};
use crate::net::endpoint::{answer_requests, bind, exchange, Net, NetOptions};
use crate::net::proto::{decode, encode};
use crate::ticket::{Provider, RegistryTicket, Ticket};

use super::store::*;
use super::wire::*;

/// Most holding records challenged in one round.
const CHALLENGES_PER_ROUND: usize = 8;

/// A running registry: its state and endpoint.
pub(super) struct Node {
    pub(super) reg: Registry,
    pub(super) net: Net,
}

impl Node {
    pub(super) fn provider(&self) -> Provider {
        self.net.provider()
    }

    /// Forwards new items to every peer but `except`, in the background, best effort (the
    /// periodic sync repairs what is lost).
    pub(super) fn forward(self: &Arc<Self>, items: Items, except: [u8; 32]) {
        if items.is_empty() {
            return;
        }
        let req = encode(&Request::Offer {
            entries: items.entries,
            notices: items.notices,
            approvals: items.approvals,
            volunteers: items.volunteers,
            holdings: items.holdings,
        });
        for p in self.reg.peers() {
            if p.id == except {
                continue;
            }
            let node = self.clone();
            let req = req.clone();
            tokio::spawn(async move {
                if let Ok(id) = node.net.learn(&p) {
                    let _ = exchange(&node.net, id, ALPN, &req, MAX_MESSAGE, WAIT).await;
                }
            });
        }
    }

    /// Merges what peer `from` offered or answered; returns the new items.
    pub(super) fn merge(&self, items: Items, from: [u8; 32]) -> Items {
        // Notices first: a notice may taint a dataset whose entry comes with it; approvals
        // next: a curated registry takes an approved publisher's entries.
        let notices = (items.notices.into_iter())
            .filter(|n| self.reg.accept_notice(n) == Ok(true))
            .collect();
        let approvals = (items.approvals.into_iter())
            .filter(|a| self.reg.accept_approval(a) == Ok(true))
            .collect();
        let entries = (items.entries.into_iter())
            .filter(|e| self.reg.accept_entry(e, false, from) == Ok(true))
            .collect();
        // Offers before holding records: only a volunteer's records are taken.
        let volunteers = (items.volunteers.into_iter())
            .filter(|v| self.reg.accept_volunteer(v) == Ok(true))
            .collect();
        let holdings = (items.holdings.into_iter())
            .filter(|h| self.reg.accept_holding(h) == Ok(true))
            .collect();
        Items {
            entries,
            notices,
            approvals,
            volunteers,
            holdings,
        }
    }

    /// One anti-entropy round with every peer (and candidate), all at once: a peer that is
    /// down costs its connection timeout without delaying the others.
    pub(super) async fn sync_round(self: &Arc<Self>) {
        let d = self.reg.digest();
        let req = encode(&Request::Sync {
            from: self.provider(),
            have: d.entries,
            notices: d.notices,
            approvals: d.approvals,
            volunteers: d.volunteers,
            holdings: d.holdings,
        });
        let asks = self.reg.to_sync().into_iter().map(|(p, known)| {
            let req = &req;
            async move {
                let id = self.net.learn(&p).ok()?;
                let bytes = exchange(&self.net, id, ALPN, req, MAX_MESSAGE, WAIT)
                    .await
                    .ok()?;
                Some((p, known, decode::<Response>(&bytes).ok()?))
            }
        });
        for (p, known, answer) in n0_future::join_all(asks).await.into_iter().flatten() {
            let Response::Sync {
                entries,
                notices,
                approvals,
                volunteers,
                holdings,
                peers,
            } = answer
            else {
                continue;
            };
            if !known {
                self.reg.add_peer(&p);
            }
            for q in peers {
                self.reg.add_candidate(&q);
            }
            let items = Items {
                entries,
                notices,
                approvals,
                volunteers,
                holdings,
            };
            let new = tokio::task::block_in_place(|| self.merge(items, p.id));
            self.forward(new, p.id);
        }
    }

    /// One round of challenges: a few random holding records, all at once; each that fails
    /// is dropped.
    pub(super) async fn challenge_round(self: &Arc<Self>) {
        let picked = self.reg.pick_holdings(CHALLENGES_PER_ROUND);
        let asks = picked.iter().map(|h| async move {
            let v =
                crate::net::challenge::challenge(&self.net, h, crate::net::challenge::LIMIT).await;
            (h, v.ok)
        });
        for (h, ok) in n0_future::join_all(asks).await {
            if !ok {
                tokio::task::block_in_place(|| self.reg.drop_holding(h));
            }
        }
    }

    /// Checks that an operator's signed item is signed by this registry's key.
    pub(super) fn operator_signed(
        &self,
        signer: [u8; 32],
        what: &str,
    ) -> std::result::Result<(), String> {
        if signer == self.reg.id() {
            return Ok(());
        }
        Err(format!(
            "the {what} is signed by {}, not by this registry ({}): only its operator can {what}",
            hex::encode(signer),
            hex::encode(self.reg.id())
        ))
    }

    /// The answer to a client's item: `Published`, after forwarding `items` (the item) to
    /// the peers when it was new here; or why it was refused.
    fn published(
        self: &Arc<Self>,
        accepted: std::result::Result<bool, String>,
        items: Items,
        peer: [u8; 32],
    ) -> Response {
        match accepted {
            Ok(new) => {
                if new {
                    self.forward(items, peer);
                }
                Response::Published { new }
            }
            Err(e) => Response::Error(e),
        }
    }

    pub(super) fn handle(self: &Arc<Self>, bytes: &[u8], peer: [u8; 32]) -> Response {
        let req: Request = match decode(bytes) {
            Ok(r) => r,
            Err(e) => return Response::Error(format!("malformed request: {e}")),
        };
        match req {
            Request::Publish { entry } => {
                let accepted = self.reg.accept_entry(&entry, true, peer);
                let items = Items {
                    entries: vec![entry],
                    ..Items::default()
                };
                self.published(accepted, items, peer)
            }
            Request::Search { term } => Response::Entries(self.reg.select(|b| b.rank(&term))),
            Request::Lookup { name } => {
                Response::Entries(self.reg.select(|b| (b.name == name).then_some(0)))
            }
            Request::Notices => Response::Notices(
                self.reg
                    .lock()
                    .notices
                    .values()
                    .map(Notice::encode)
                    .collect(),
            ),
            Request::Approvals => Response::Approvals(
                (self.reg.lock().approvals.values())
                    .map(Approval::encode)
                    .collect(),
            ),
            Request::Notice { notice } => {
                match Notice::decode(&notice) {
                    Ok(n) => {
                        if let Err(e) = self.operator_signed(n.body.registry, "taint") {
                            return Response::Error(e);
                        }
                    }
                    Err(e) => return Response::Error(e.to_string()),
                }
                let accepted = self.reg.accept_notice(&notice);
                let items = Items {
                    notices: vec![notice],
                    ..Items::default()
                };
                self.published(accepted, items, peer)
            }
            Request::Approve { approval } => {
                match Approval::decode(&approval) {
                    Ok(a) => {
                        if let Err(e) = self.operator_signed(a.body.registry, "approve") {
                            return Response::Error(e);
                        }
                    }
                    Err(e) => return Response::Error(e.to_string()),
                }
                let accepted = self.reg.accept_approval(&approval);
                let items = Items {
                    approvals: vec![approval],
                    ..Items::default()
                };
                self.published(accepted, items, peer)
            }
            Request::Volunteer { offer } => {
                let accepted = self.reg.accept_volunteer(&offer);
                let items = Items {
                    volunteers: vec![offer],
                    ..Items::default()
                };
                self.published(accepted, items, peer)
            }
            Request::Hold { records } => {
                // A forged or malformed record refuses the batch, naming why; none is kept.
                let records: Vec<Vec<u8>> = records.into_iter().take(MAX_HOLD_BATCH).collect();
                if let Some(e) = records.iter().find_map(|r| Holding::decode(r).err()) {
                    return Response::Error(e.to_string());
                }
                let mut new = Vec::new();
                for r in records {
                    match self.reg.accept_holding(&r) {
                        Ok(true) => new.push(r),
                        Ok(false) => {}
                        Err(e) => return Response::Error(e),
                    }
                }
                let count = new.len() as u64;
                self.forward(
                    Items {
                        holdings: new,
                        ..Items::default()
                    },
                    peer,
                );
                Response::Offered { new: count }
            }
            Request::Holdings { dataset } => Response::Holdings(self.reg.holdings(dataset)),
            Request::Volunteers => Response::Volunteers(self.reg.volunteers()),
            Request::Offer {
                entries,
                notices,
                approvals,
                volunteers,
                holdings,
            } => {
                if !self.reg.peers().iter().any(|p| p.id == peer) {
                    return Response::Error(
                        "offers are taken from peer registries only (they sync first)".into(),
                    );
                }
                let items = Items {
                    entries,
                    notices,
                    approvals,
                    volunteers,
                    holdings,
                };
                let new = self.merge(items, peer);
                let count = new.len() as u64;
                self.forward(new, peer);
                Response::Offered { new: count }
            }
            Request::Sync {
                from,
                have,
                notices,
                approvals,
                volunteers,
                holdings,
            } => {
                if from.id != peer {
                    return Response::Error("a registry syncs under its own id".into());
                }
                self.reg.add_peer(&from);
                let items = self.reg.missing(&Digest {
                    entries: have,
                    notices,
                    approvals,
                    volunteers,
                    holdings,
                });
                let peers = self
                    .reg
                    .peers()
                    .into_iter()
                    .filter(|p| p.id != peer)
                    .collect();
                Response::Sync {
                    entries: items.entries,
                    notices: items.notices,
                    approvals: items.approvals,
                    volunteers: items.volunteers,
                    holdings: items.holdings,
                    peers,
                }
            }
        }
    }
}

#[derive(Clone)]
pub(super) struct RegistryProtocol(Arc<Node>, Arc<crate::net::limit::Limiter>);

impl std::fmt::Debug for RegistryProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistryProtocol")
    }
}

impl ProtocolHandler for RegistryProtocol {
    async fn accept(&self, conn: Connection) -> std::result::Result<(), AcceptError> {
        answer_requests(conn, MAX_MESSAGE, |request, peer| async move {
            // Every request counts against the peer's bounds, as on `lode/2`.
            let _permit = match self
                .1
                .admit(*peer.as_bytes(), crate::net::limit::Class::Work)
                .await
            {
                Ok(p) => p,
                Err(msg) => return encode(&Response::Error(msg)),
            };
            let response = match request {
                // Handling writes and fsyncs files: off the async workers' hot path.
                Ok(bytes) => {
                    tokio::task::block_in_place(|| self.0.handle(&bytes, *peer.as_bytes()))
                }
                Err(e) => Response::Error(format!("request unreadable or too large: {e}")),
            };
            encode(&response)
        })
        .await
    }
}

/// Answers peers of the previous protocol with an error that says what to do.
#[derive(Clone, Debug)]
struct OldProtocol;

impl ProtocolHandler for OldProtocol {
    async fn accept(&self, conn: Connection) -> std::result::Result<(), AcceptError> {
        answer_requests(conn, MAX_MESSAGE, |_, _| async {
            encode(&Response::Error(format!(
                "this registry speaks {}, not {}: upgrade lode",
                String::from_utf8_lossy(ALPN),
                String::from_utf8_lossy(OLD_ALPN)
            )))
        })
        .await
    }
}

/// Runs the registry of `dir` until `shutdown`: answers publishes, searches and lookups,
/// replicates with `peers` (and every registry that syncs with it) every `sync` interval,
/// starting at once. `ready` receives its ticket as soon as it listens.
pub async fn serve(
    dir: &Path,
    peers: &[RegistryTicket],
    sync: Duration,
    policy: Policy,
    opts: &NetOptions,
    ready: impl FnOnce(&RegistryTicket),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let reg = Registry::open(dir, policy)?;
    for t in peers {
        for p in &t.0.providers {
            reg.add_peer(p);
        }
    }
    let net = bind(&reg.key, opts).await?;
    let node = Arc::new(Node { reg, net });
    let router = Router::builder(node.net.endpoint.clone())
        .accept(
            ALPN,
            RegistryProtocol(
                node.clone(),
                crate::net::limit::Limiter::new(crate::net::limit::Limits::REGISTRY),
            ),
        )
        .accept(OLD_ALPN, OldProtocol)
        .spawn();
    let ticket = RegistryTicket(Ticket {
        dataset: node.reg.id(),
        providers: vec![node.provider()],
    });
    let _ = std::fs::write(dir.join("registry.ticket"), format!("{ticket}\n"));
    ready(&ticket);
    let syncing = {
        let node = node.clone();
        tokio::spawn(async move {
            loop {
                node.sync_round().await;
                tokio::time::sleep(sync).await;
            }
        })
    };
    let challenging = node.reg.policy.challenge.map(|every| {
        let node = node.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                node.challenge_round().await;
            }
        })
    });
    shutdown.await;
    syncing.abort();
    if let Some(c) = challenging {
        c.abort();
    }
    let _ = std::fs::remove_file(dir.join("registry.ticket"));
    router
        .shutdown()
        .await
        .map_err(|e| Error::Net(format!("shutdown: {e}")))?;
    Ok(())
}
