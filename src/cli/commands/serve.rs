//! The `lode serve` command.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lode::daemon;

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
    // Without a repository named, the current one, unless only the mirrors are served.
    let repos = if repos.is_empty() && !mirrors {
        vec![ctx.cwd.clone()]
    } else {
        repos.iter().map(|r| ctx.cwd.join(r)).collect()
    };
    let opts = daemon::Options {
        home: ctx.home.clone(),
        repo: ctx.opts.clone(),
        repos,
        mirrors,
        follow: (follow > 0).then(|| Duration::from_secs(follow)),
        http: http.map(|addr| (addr, gateway_limits())),
        net: net.options(),
        progress: Some(Arc::new(ui.bar("serving"))),
    };
    let (json, quiet) = (ui.json, ui.quiet);
    let out = &mut ui.out;
    let mut printed: io::Result<()> = Ok(());
    let rt = runtime()?;
    let shutdown = shutdown_signal(&rt);
    rt.block_on(daemon::run(
        opts,
        move |round| report_round(round, quiet),
        |ready| {
            if !quiet && !json {
                for n in ready.notes {
                    #[allow(clippy::print_stderr)]
                    {
                        eprintln!("note: {n}");
                    }
                }
            }
            printed = (|| {
                for t in ready.tickets {
                    if json {
                        writeln!(out, "{{\"ticket\": \"{t}\"}}")?;
                    } else {
                        writeln!(out, "ticket: {t}")?;
                    }
                }
                if let Some(u) = ready.http {
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
                    eprintln!("serving {} dataset(s); Ctrl-C to stop", ready.tickets.len());
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
