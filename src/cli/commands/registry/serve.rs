//! The `lode registry serve` command.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lode::net::registry;
use lode::ticket::RegistryTicket;
use lode::Error;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, shutdown_signal, CliResult, Ctx};

/// Run a registry until Ctrl-C or SIGTERM; prints `registry: TICKET`.
#[derive(Args)]
pub struct ServeArgs {
    /// Where the registry keeps its key, entries and notices (default
    /// $LODE_HOME/registry).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Another registry to replicate with (repeatable); registries that sync with this
    /// one become its peers too.
    #[arg(long = "peer", value_name = "TICKET")]
    peers: Vec<String>,
    /// Ask every peer for what this registry lacks every SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    sync: u64,
    /// List only publishers this registry's operator approved (`lode registry approve`);
    /// without it anyone may list datasets.
    #[arg(long)]
    curated: bool,
    /// Also honour the approvals of this registry (repeatable; implies --curated): a
    /// replica of a curated registry names it here.
    #[arg(long = "curated-by", value_name = "TICKET")]
    curated_by: Vec<String>,
    /// Most datasets one publisher may list here.
    #[arg(long, value_name = "N", default_value_t = lode::net::registry::DEFAULT_PER_PUBLISHER)]
    max_per_publisher: usize,
    /// Most entries one peer may bring here (a peer registry, or the endpoint that
    /// published them).
    #[arg(long, value_name = "N", default_value_t = lode::net::registry::DEFAULT_PER_PEER)]
    max_per_peer: usize,
    /// Challenge a few random holding records every SECS seconds (0: never): a storage
    /// manager that does not serve a random range of the head it claims loses its record.
    #[arg(long, value_name = "SECS", default_value_t = lode::net::registry::DEFAULT_CHALLENGE.as_secs())]
    challenge: u64,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_serve(ctx: &Ctx, ui: &mut Ui, args: ServeArgs) -> CliResult {
    let ServeArgs {
        dir,
        peers,
        sync,
        curated,
        curated_by,
        max_per_publisher,
        max_per_peer,
        challenge,
        net,
    } = args;
    let curators: Vec<[u8; 32]> = (curated_by.iter())
        .map(|t| t.parse::<RegistryTicket>().map(|t| t.key()))
        .collect::<Result<_, _>>()?;
    if max_per_publisher == 0 || max_per_peer == 0 {
        return Err(
            Error::Other("--max-per-publisher and --max-per-peer take at least 1".into()).into(),
        );
    }
    let policy = registry::Policy {
        curated: curated || !curators.is_empty(),
        curators,
        per_publisher: max_per_publisher,
        per_peer: max_per_peer,
        challenge: (challenge > 0).then(|| Duration::from_secs(challenge)),
    };
    let dir = dir
        .map(|d| ctx.cwd.join(d))
        .unwrap_or_else(|| registry::default_dir(&ctx.home));
    let peers: Vec<RegistryTicket> = peers.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
    let json = ui.json;
    let quiet = ui.quiet;
    let out = &mut ui.out;
    let mut printed = Ok(());
    let rt = runtime()?;
    let shutdown = shutdown_signal(&rt);
    rt.block_on(registry::serve(
        &dir,
        &peers,
        Duration::from_secs(sync.max(1)),
        policy,
        &net.options(),
        |t| {
            printed = (|| {
                if json {
                    writeln!(out, "{{\"registry\": \"{t}\"}}")?;
                } else {
                    writeln!(out, "registry: {t}")?;
                }
                out.flush()
            })();
            if !quiet && !json {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("registry in {}; Ctrl-C to stop", dir.display());
                }
            }
        },
        shutdown,
    ))?;
    printed?;
    Ok(())
}
