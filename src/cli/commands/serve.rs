//! The `lode serve` command.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lode::{Error, Repo};

use crate::cli::args::NetArgs;
use crate::cli::output::{report_round, Ui};
use crate::cli::{runtime, shutdown_signal, CliResult, Ctx};

/// Serve datasets to peers until Ctrl-C or SIGTERM; prints `ticket: TICKET` per dataset.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode serve\n  lode serve --bind 127.0.0.1:0 --relay disabled --no-discovery   # LAN / air-gapped"
)]
pub struct ServeArgs {
    /// Repositories to serve (default: the current one).
    repos: Vec<PathBuf>,
    /// Also serve the public datasets read-only over HTTP on ADDR (listing pages, file
    /// downloads with Range support, BLAKE3 ids in headers); prints `http: URL`.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Also serve every mirror of this user (`lode mirror add`).
    #[arg(long)]
    mirrors: bool,
    /// With --mirrors: follow each mirrored dataset (subscribed to its origin, fetched as
    /// soon as it changes) and also poll every SECS seconds (0: do not follow).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    follow: u64,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_serve(ctx: &Ctx, ui: &mut Ui, args: ServeArgs) -> CliResult {
    let ServeArgs {
        repos,
        http,
        mirrors,
        follow,
        net,
    } = args;
    let mirror_paths = if mirrors {
        lode::net::mirror::paths(&ctx.home)?
    } else {
        vec![]
    };
    let open = || -> Result<Vec<Repo>, Error> {
        let mut out: Vec<Repo> = if repos.is_empty() && mirrors {
            vec![]
        } else if repos.is_empty() {
            vec![ctx.repo()?]
        } else {
            repos
                .iter()
                .map(|r| Repo::discover(&ctx.cwd.join(r), ctx.home.clone(), ctx.opts.clone()))
                .collect::<Result<_, _>>()?
        };
        for p in &mirror_paths {
            out.push(Repo::discover(p, ctx.home.clone(), ctx.opts.clone())?);
        }
        if out.is_empty() {
            return Err(Error::Other(
                "nothing to serve: no repository given and no mirror (`lode mirror add`)".into(),
            ));
        }
        Ok(out)
    };
    let served = open()?;
    for r in &served {
        r.release_db();
    }
    let opts = net.options();
    let json = ui.json;
    let quiet = ui.quiet;
    let index_bar = std::sync::Arc::new(ui.bar("serving"));
    let out = &mut ui.out;
    let mut printed: io::Result<()> = Ok(());
    let rt = runtime()?;
    // The gateway reads its own handles of the repositories.
    let gateway = match http {
        None => None,
        Some(addr) => {
            let listener = rt.block_on(lode::gateway::bind(addr))?;
            let url = listener
                .local_addr()
                .map_err(|e| Error::Net(format!("HTTP listener: {e}")))?;
            let gw = std::sync::Arc::new(lode::gateway::Gateway::new(open()?)?);
            Some((listener, gw, url))
        }
    };
    let http_url = gateway.as_ref().map(|(_, _, u)| *u);
    let gw_pages = gateway.as_ref().map(|(_, gw, _)| gw.clone());
    if let Some((listener, gw, _)) = gateway {
        rt.spawn(lode::gateway::run(listener, gw, gateway_limits()));
    }
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    if mirrors && follow > 0 {
        // Follow the mirrored datasets: a subscription per mirror wakes the follower
        // as soon as its origin publishes a new head; a round also runs every
        // `follow` seconds (the polling fallback). A round obeys the taint notices
        // of the followed registries, fetches each dataset from its origin, then has
        // the server re-read what it serves.
        let home = ctx.home.clone();
        let opts = net.options();
        let quiet = ui.quiet;
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        for p in &mirror_paths {
            rt.spawn(lode::net::mirror::watch(
                home.clone(),
                p.clone(),
                opts.clone(),
                wake.clone(),
                Duration::from_secs(follow),
            ));
        }
        rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(follow)) => {}
                    _ = wake.notified() => {}
                }
                let reload_now = || {
                    let _ = reload_tx.send(());
                };
                let round = lode::net::mirror::follow_once(&home, &opts, &reload_now).await;
                report_round(&round, quiet);
                if reload_tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    let setup = lode::net::serve::ServeSetup {
        progress: Some(index_bar),
        reload: Some(reload_rx),
    };
    let shutdown = shutdown_signal(&rt);
    rt.block_on(lode::net::serve::serve(
        served,
        &opts,
        setup,
        |tickets, notes| {
            if let Some(gw) = &gw_pages {
                // The dataset pages show how to get each dataset.
                gw.set_tickets(tickets);
            }
            if !quiet && !json {
                for n in notes {
                    #[allow(clippy::print_stderr)]
                    {
                        eprintln!("note: {n}");
                    }
                }
            }
            printed = (|| {
                for t in tickets {
                    if json {
                        writeln!(out, "{{\"ticket\": \"{t}\"}}")?;
                    } else {
                        writeln!(out, "ticket: {t}")?;
                    }
                }
                if let Some(u) = http_url {
                    if json {
                        writeln!(out, "{{\"http\": \"http://{u}/\"}}")?;
                    } else {
                        writeln!(out, "http: http://{u}/")?;
                    }
                }
                out.flush()
            })();
            if !quiet && !json {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("serving {} dataset(s); Ctrl-C to stop", tickets.len());
                }
            }
        },
        shutdown,
    ))?;
    printed?;
    Ok(())
}

/// The HTTP gateway's bounds: the defaults, or `LODE_HTTP_TIMEOUT_MS` and
/// `LODE_HTTP_MAX_CONNECTIONS` from the environment.
#[allow(clippy::disallowed_methods)]
fn gateway_limits() -> lode::gateway::Limits {
    let mut limits = lode::gateway::Limits::default();
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(ms) = var("LODE_HTTP_TIMEOUT_MS").filter(|ms| *ms > 0) {
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(n) = var("LODE_HTTP_MAX_CONNECTIONS").filter(|n| *n > 0) {
        limits.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    limits
}
