//! The `lode/2` protocol handler: ref listings, head waits, revocations, push requests.

use std::collections::HashSet;
use std::time::Duration;

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};

use crate::error::{Error, Result};
use crate::net::endpoint::answer_requests;
use crate::net::limit::Class;
use crate::net::proto::{self, Listing, Request, Response};
use crate::ops::access;
use crate::trust::{self, Revocation, Rights};

use super::push::*;
use super::state::*;

impl ProtocolHandler for LodeProtocol {
    async fn accept(&self, conn: Connection) -> std::result::Result<(), AcceptError> {
        answer_requests(conn, proto::MAX_MESSAGE, |request, peer| async move {
            let response = match request {
                Ok(bytes) => self.handle(&bytes, peer).await,
                Err(e) => Response::Error(format!("request unreadable or too large: {e}")),
            };
            proto::encode(&response)
        })
        .await
    }
}

impl LodeProtocol {
    pub(super) async fn handle(&self, bytes: &[u8], remote: iroh::EndpointId) -> Response {
        let peer = *remote.as_bytes();
        let req: std::result::Result<Request, String> = proto::decode(bytes);
        // Every request counts against the peer's bounds, a malformed one too.
        let class = match &req {
            Ok(Request::WaitHead { .. }) => Class::Poll,
            _ => Class::Work,
        };
        let _permit = match self.0.limiter.admit(peer, class).await {
            Ok(p) => p,
            Err(msg) => return Response::Error(msg),
        };
        let req = match req {
            Ok(r) => r,
            Err(e) => return Response::Error(format!("malformed request: {e}")),
        };
        match req {
            Request::ListRefs { dataset, ticket } => self.list(dataset, ticket, peer).await,
            Request::Peers { dataset, ticket } => {
                match self
                    .0
                    .authorize(&dataset, ticket.as_deref(), &peer, Rights::READ)
                {
                    // Restricted datasets have no swarm (docs/SECURITY.md): nothing to hand out.
                    Ok((served, _)) if !served.state.lock().expect("not poisoned").private => {
                        Response::Peers(served.book.signed(access::now()))
                    }
                    Ok(_) => Response::Peers(Vec::new()),
                    Err(msg) => Response::Denied(msg),
                }
            }
            Request::WaitHead {
                dataset,
                ticket,
                seq,
                wait,
            } => {
                let served =
                    match self
                        .0
                        .authorize(&dataset, ticket.as_deref(), &peer, Rights::RELAY)
                    {
                        Ok((served, _)) => served,
                        Err(msg) => return Response::Denied(msg),
                    };
                let mut rx = served.seq.subscribe();
                let wait = Duration::from_secs(wait.min(proto::MAX_WAIT));
                let _ = tokio::time::timeout(wait, rx.wait_for(|s| *s > seq)).await;
                self.list(dataset, ticket, peer).await
            }
            Request::Revoke {
                dataset,
                revocations,
            } => self.revoke(dataset, revocations).await,
            Request::Push {
                dataset,
                old,
                new,
                force,
                from,
                ticket,
                seq,
            } => {
                let (served, cap) =
                    match self
                        .0
                        .authorize(&dataset, ticket.as_deref(), &peer, Rights::WRITE)
                    {
                        Ok(ok) => ok,
                        Err(msg) => return Response::Denied(msg),
                    };
                let scope = cap.map(|c| c.scope).unwrap_or_default();
                // Opening the database may wait for another holder: not on a runtime worker.
                match tokio::task::block_in_place(|| access::can_sign(&served.repo)) {
                    Ok(true) => {}
                    Ok(false) => {
                        served.repo.release_db();
                        return Response::Rejected(
                            "this peer mirrors the dataset and cannot publish it: push to the dataset's owner".into(),
                        );
                    }
                    Err(e) => return Response::Error(format!("cannot read the dataset: {e}")),
                }
                served.repo.release_db();
                if from.id != peer {
                    return Response::Rejected("the pusher must provide the objects itself".into());
                }
                let push = PushRequest {
                    old,
                    new,
                    force,
                    from,
                    scope,
                    seq,
                };
                match self.receive_push(&served, push).await {
                    Ok((objects, bytes)) => Response::Pushed {
                        head: new,
                        objects,
                        bytes,
                    },
                    Err(e) => Response::Rejected(e.to_string()),
                }
            }
        }
    }

    pub(super) async fn list(
        &self,
        dataset: [u8; 32],
        ticket: Option<Vec<u8>>,
        peer: [u8; 32],
    ) -> Response {
        let check = || {
            self.0
                .authorize(&dataset, ticket.as_deref(), &peer, Rights::RELAY)
        };
        let served = match check() {
            Ok((served, _)) => served,
            Err(msg) => return Response::Denied(msg),
        };
        if let Err(e) = self.0.refresh(&served).await {
            // A dataset withdrawn meanwhile is refused like one never served.
            if let Err(msg) = check() {
                return Response::Denied(msg);
            }
            return Response::Error(format!("cannot read the dataset: {e}"));
        }
        // The refresh may have brought new revocations or made the dataset private: decide
        // again on the fresh state.
        let cap = match check() {
            Ok((_, cap)) => cap,
            Err(msg) => return Response::Denied(msg),
        };
        if let Some(cap) = &cap {
            self.0.admit(&served, peer, cap);
        }
        let st = served.state.lock().expect("not poisoned");
        match &st.head {
            None => Response::Error("this peer has no signed head for the dataset yet".into()),
            Some(h) => Response::Refs(Listing {
                head: h.encode(),
                revocations: st.revocations.iter().map(Revocation::encode).collect(),
            }),
        }
    }

    /// Stores revocations sent by a peer (`lode revoke` tells the peers that serve the
    /// dataset). Anyone may relay them, but each must be signed by the dataset's owner, and
    /// they are checked before anything about the dataset is looked up: a request without
    /// one (no revocations, or a bad one) gets the same answer whether the dataset is hosted
    /// here or not, and changes nothing. Only revocations not known yet are written, under
    /// the writer lock taken off the runtime with a bounded wait; cached admissions are
    /// dropped by the refresh that follows.
    pub(super) async fn revoke(&self, dataset: [u8; 32], revocations: Vec<Vec<u8>>) -> Response {
        const NOT_SERVED: &str = "this peer does not serve that dataset";
        if revocations.is_empty() {
            return Response::Denied(
                "the request carries no revocation signed by the dataset owner".into(),
            );
        }
        if revocations.len() > trust::MAX_REVOCATIONS {
            return Response::Denied(format!(
                "too many revocations (at most {})",
                trust::MAX_REVOCATIONS
            ));
        }
        // Checking thousands of signatures takes a while: not on a runtime worker.
        let checked = tokio::task::spawn_blocking(move || {
            revocations
                .iter()
                .map(|b| Revocation::decode(b, &dataset))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await;
        let revs = match checked {
            Ok(Ok(revs)) => revs,
            Ok(Err(e)) => return Response::Denied(format!("bad revocation: {e}")),
            Err(e) => return Response::Error(format!("cannot check the revocations: {e}")),
        };
        let Some(served) = self.0.datasets.get(&dataset).cloned() else {
            return Response::Denied(NOT_SERVED.into());
        };
        let _one_at_a_time = served.revoke.lock().await;
        let unknown = |served: &Served| -> Vec<Revocation> {
            let st = served.state.lock().expect("not poisoned");
            let known: HashSet<[u8; 32]> = st.revocations.iter().map(Revocation::id).collect();
            revs.iter()
                .filter(|r| !known.contains(&r.id()))
                .cloned()
                .collect()
        };
        if served.state.lock().expect("not poisoned").gone {
            return Response::Denied(NOT_SERVED.into());
        }
        let mut new = unknown(&served);
        if !new.is_empty() {
            // The owner may have stored some meanwhile (`lode revoke` on this machine).
            if let Err(e) = self.0.refresh(&served).await {
                return Response::Error(format!("cannot read the dataset: {e}"));
            }
            new = unknown(&served);
        }
        if new.is_empty() {
            return Response::Revoked { new: 0 };
        }
        let count = new.len() as u64;
        let target = served.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let r = (|| -> Result<()> {
                let _lock =
                    crate::db::WriteLock::acquire(&target.repo.lock_path(), REVOKE_LOCK_WAIT)?;
                access::store_revocations(&target.repo, &new)
            })();
            target.repo.release_db();
            r
        })
        .await;
        match stored {
            Ok(Ok(())) => match self.0.refresh(&served).await {
                Ok(()) => Response::Revoked { new: count },
                Err(e) => Response::Error(format!("cannot read the dataset: {e}")),
            },
            Ok(Err(e @ Error::Locked { .. })) => Response::Error(format!(
                "cannot store the revocations now: {e}; send them again later"
            )),
            Ok(Err(e)) => Response::Error(format!("cannot store the revocations: {e}")),
            Err(e) => Response::Error(format!("cannot store the revocations: {e}")),
        }
    }
}
