//! The daemon that `lode serve` runs: the iroh server of the given repositories and of this
//! user's mirrors (`net::serve`), the HTTP gateway beside it (`gateway`), and the following
//! of the mirrors (`net::mirror`, `net::volunteer`): one subscription per mirror at its
//! origin that wakes the follower, a follow round at least every polling interval, and the
//! channel through which a round has the server re-read what it serves, or restart (on the
//! same port) to serve the datasets it adopted. A volunteering storage manager may start
//! with no mirror: it serves once it adopts one. The CLI parses the arguments, builds
//! [`Options`] and prints what [`run`] reports; the daemon never prints.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::gateway::{self, Gateway};
use crate::keys::Home;
use crate::net::endpoint::NetOptions;
use crate::net::fetch;
use crate::net::mirror::{self, Round};
use crate::net::serve::{self, ServeSetup};
use crate::progress::Progress;
use crate::repo::{Repo, RepoOptions};
use crate::ticket::Ticket;
use crate::trust::Bundle;

/// How often the gateway asks the registries this user knows for the copies of what it
/// serves (and whenever a page finds them stale).
const COPIES_EVERY: Duration = Duration::from_secs(300);

/// What the daemon serves, and how.
pub struct Options {
    pub home: Home,
    /// How the served repositories are opened.
    pub repo: RepoOptions,
    /// The repositories to serve, each named by a path inside it; the mirrors come after
    /// them.
    pub repos: Vec<PathBuf>,
    /// Also serve every mirror of this user (`lode mirror add`).
    pub mirrors: bool,
    /// With `mirrors`: follow each mirrored dataset (subscribed to its origin, fetched as
    /// soon as it changes) and also run a follow round at this interval; `None`: do not
    /// follow.
    pub follow: Option<Duration>,
    /// Also serve the public datasets read-only over HTTP on this address, within these
    /// bounds.
    pub http: Option<(SocketAddr, gateway::Limits)>,
    pub net: NetOptions,
    /// Reports the walk of a repository whose reachability index is new or behind.
    pub progress: Option<Arc<dyn Progress>>,
}

/// What the daemon serves, once it listens.
pub struct Ready<'a> {
    /// One ticket per served dataset, in the order of [`Options::repos`], then the mirrors.
    pub tickets: &'a [Ticket],
    /// Things the user should know (a remembered port that was taken, …).
    pub notes: &'a [String],
    /// The address the HTTP gateway listens on.
    pub http: Option<SocketAddr>,
}

/// Runs the daemon until `shutdown` resolves. `ready` is called once everything listens;
/// `on_round` after each follow round of the mirrors (with what it fetched, dropped and
/// obeyed, or why a mirror failed). Fails before listening when a repository cannot be
/// opened, there is nothing to serve, or an address is taken.
pub async fn run(
    opts: Options,
    on_round: impl Fn(&Round) + Send + Sync + 'static,
    ready: impl FnOnce(&Ready<'_>),
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let Options {
        home,
        repo: repo_opts,
        repos,
        mirrors,
        follow,
        http,
        net,
        progress,
    } = opts;
    // A volunteering storage manager may start with nothing to serve: it serves what it
    // adopts.
    let volunteering =
        mirrors && follow.is_some() && !crate::net::volunteer::volunteered(&home).is_empty();
    let mut mirror_paths = if mirrors {
        mirror::paths(&home)?
    } else {
        vec![]
    };
    let open = |mirror_paths: &[PathBuf]| -> Result<Vec<Repo>> {
        let mut out = Vec::new();
        for p in repos.iter().chain(mirror_paths) {
            out.push(Repo::discover(p, home.clone(), repo_opts.clone())?);
        }
        if out.is_empty() && !volunteering {
            return Err(Error::Other(
                "nothing to serve: no repository given and no mirror (`lode mirror add`)".into(),
            ));
        }
        Ok(out)
    };
    let served = open(&mirror_paths)?;
    for r in &served {
        r.release_db();
    }
    // The tasks beside the server end with it.
    let mut tasks = JoinSet::new();
    // The gateway reads its own handles of the repositories.
    let gateway = match http {
        None => None,
        Some((addr, limits)) => {
            let listener = gateway::bind(addr).await?;
            let url = listener
                .local_addr()
                .map_err(|e| Error::Net(format!("HTTP listener on {addr}: {e}")))?;
            let gw = Arc::new(Gateway::new(open(&mirror_paths)?)?);
            tasks.spawn(gateway::run(listener, gw.clone(), limits));
            // Dataset pages show the copies the registries this user knows count.
            let (copies, net) = (gw.clone(), net.clone());
            tasks.spawn(async move { copies.follow_copies(&net, COPIES_EVERY).await });
            Some((gw, url))
        }
    };
    let (signal_tx, mut signal_rx) = tokio::sync::mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    let every = follow.filter(|_| mirrors);
    let watch_each = |tasks: &mut JoinSet<()>, paths: &[PathBuf]| {
        let Some(every) = every else { return };
        for p in paths {
            tasks.spawn(watch(
                home.clone(),
                p.clone(),
                net.clone(),
                wake.clone(),
                every,
            ));
        }
    };
    watch_each(&mut tasks, &mirror_paths);
    // A follow round fetches each public mirror through its dataset's swarm: pieces from the
    // other mirrors and downloaders that hold them, the origin asked only for the rest. Its
    // session serves nothing (this process serves the mirrors, once a round completed their
    // objects and the server re-read them) and does not linger.
    let follow_net = NetOptions {
        share: crate::net::endpoint::ShareOptions::mirror_round(),
        ..net.clone()
    };
    if let Some(every) = every {
        tasks.spawn(follow_loop(
            home.clone(),
            follow_net,
            every,
            wake.clone(),
            signal_tx,
            on_round,
        ));
    }
    let http_url = gateway.as_ref().map(|(_, url)| *url);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut ready = Some(ready);
    let mut served = Some(served);
    let mut net_now = net.clone();
    let mut failed_restart = false;
    let mut live = true;
    // Serves until shutdown; a follow round that adopted a dataset restarts the server on
    // the same port with the new mirror among what it serves.
    loop {
        let repos_now = match served.take() {
            Some(r) => r,
            None => {
                let now = mirror::paths(&home)?;
                let added: Vec<PathBuf> = (now.iter())
                    .filter(|p| !mirror_paths.contains(p))
                    .cloned()
                    .collect();
                watch_each(&mut tasks, &added);
                mirror_paths = now;
                open(&mirror_paths)?
            }
        };
        let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut stopped = false;
        let stop = async {
            loop {
                tokio::select! {
                    _ = &mut shutdown => {
                        stopped = true;
                        return;
                    }
                    signal = signal_rx.recv(), if live => match signal {
                        Some(Signal::Reload) => {
                            let _ = reload_tx.send(());
                        }
                        Some(Signal::Restart) => return,
                        None => live = false,
                    },
                }
            }
        };
        let mut port = None;
        let result = if repos_now.is_empty() {
            if let Some(ready) = ready.take() {
                ready(&Ready {
                    tickets: &[],
                    notes: &[],
                    http: http_url,
                });
            }
            stop.await;
            Ok(())
        } else {
            let setup = ServeSetup {
                progress: progress.clone(),
                reload: Some(reload_rx),
            };
            serve::serve(
                repos_now,
                &net_now,
                setup,
                |tickets, notes| {
                    port = (tickets.first())
                        .and_then(|t| t.providers.first())
                        .and_then(|p| p.addrs.first())
                        .map(|a| a.port());
                    if let Some((gw, _)) = &gateway {
                        // The dataset pages show how to get each dataset.
                        gw.set_tickets(tickets);
                    }
                    if let Some(ready) = ready.take() {
                        ready(&Ready {
                            tickets,
                            notes,
                            http: http_url,
                        });
                    }
                },
                stop,
            )
            .await
        };
        match result {
            Ok(()) if stopped => return Ok(()),
            Ok(()) => failed_restart = false,
            // The first start fails as it is; a restart that cannot take its port again
            // tries once more on any port.
            Err(e) if ready.is_some() || failed_restart => return Err(e),
            Err(_) => {
                failed_restart = true;
                net_now = net.clone();
                continue;
            }
        }
        // Restarted servers keep the port the peers know.
        if let Some(port) = port.filter(|_| net.bind.is_none_or(|a| a.port() == 0)) {
            let ip = (net.bind)
                .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| {
                    a.ip()
                });
            net_now.bind = Some(SocketAddr::new(ip, port));
        }
    }
}

/// What the follower asks of the server.
enum Signal {
    /// Re-read what it serves (a mirror deleted or dropped objects).
    Reload,
    /// Serve again, with the mirrors adopted since.
    Restart,
}

/// Follows the mirrors: a round whenever a subscription wakes it, and at least every
/// `every`. A round obeys the taint notices of the followed registries, fetches each
/// mirror from its origin, adopts what this storage manager volunteered for, then has the
/// server re-read what it serves (also right after the notices, so that deleted data stops
/// being served before the fetches), or restart with what it adopted. Ends when the server
/// is gone.
async fn follow_loop(
    home: Home,
    net: NetOptions,
    every: Duration,
    wake: Arc<Notify>,
    signal: tokio::sync::mpsc::UnboundedSender<Signal>,
    on_round: impl Fn(&Round) + Send + Sync + 'static,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = wake.notified() => {}
        }
        let reload_now = || {
            let _ = signal.send(Signal::Reload);
        };
        let round = crate::net::volunteer::follow(&home, &net, &reload_now).await;
        on_round(&round);
        let adopted = round.adopted.iter().any(|a| a.result.is_ok());
        let next = if adopted {
            Signal::Restart
        } else {
            Signal::Reload
        };
        if signal.send(next).is_err() {
            break;
        }
    }
}

/// Subscribes to a mirrored dataset at its origin (`WaitHead`, a long poll over iroh) and
/// wakes `wake` whenever a newer head is published, so that the follower fetches it at
/// once rather than at its next polling round. Runs until the mirror is removed; a provider
/// that does not answer or does not support subscriptions is asked again after `retry`
/// (the polling rounds keep the mirror up to date meanwhile).
async fn watch(home: Home, dir: PathBuf, opts: NetOptions, wake: Arc<Notify>, retry: Duration) {
    let mut seen = 0u64;
    while dir.join(".lode").is_dir() {
        let setup = (|| -> Result<(Ticket, Option<Bundle>, u64)> {
            let repo = Repo::discover(&dir, home.clone(), RepoOptions::default())?;
            let got = (|| {
                Ok((
                    fetch::remote(&repo, "origin")?,
                    crate::ops::access::own_capability(&repo)?,
                    crate::ops::access::stored_head(&repo)?.map_or(0, |h| h.body.seq),
                ))
            })();
            repo.release_db();
            got
        })();
        let Ok((ticket, cap, stored)) = setup else {
            tokio::time::sleep(retry).await;
            continue;
        };
        seen = seen.max(stored);
        let answer = async {
            let mut client = fetch::Client::new(&home, &ticket, cap, &opts).await?;
            let got = client.wait_head(seen, 50).await;
            client.close().await;
            got
        }
        .await;
        match answer {
            Ok(p) if p.head.body.seq > seen => {
                seen = p.head.body.seq;
                wake.notify_one();
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(retry).await,
        }
    }
}
