//! The `lode registry` commands: `serve|approve|approvals|taint|notices`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use lode::catalog::Tainted;
use lode::net::registry;
use lode::ticket::RegistryTicket;
use lode::Error;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, shutdown_signal, CliResult, Ctx};

#[derive(Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    action: RegistryAction,
}

#[derive(Subcommand)]
enum RegistryAction {
    /// Run a registry until Ctrl-C or SIGTERM; prints `registry: TICKET`.
    Serve {
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
        #[command(flatten)]
        net: NetArgs,
    },
    /// Approve a publisher at the curated registry this user operates (or, with --revoke,
    /// withdraw the approval): a signed approval that replicas honour too.
    #[command(
        after_help = "Examples:\n  lode registry approve lodeid1… --note \"Lee lab\" --registry lodereg1…\n  lode registry approve 5f2c…e1 --revoke --registry lodereg1…"
    )]
    Approve {
        /// The publisher: an identity card (lodeid1…, from `lode id --card`) or device id.
        publisher: String,
        /// Withdraw the approval: the publisher's entries are no longer listed.
        #[arg(long)]
        revoke: bool,
        /// Who the publisher is (public, for the operator's records).
        #[arg(long, default_value = "")]
        note: String,
        /// The running registry's ticket.
        #[arg(long, value_name = "TICKET")]
        registry: String,
        /// The registry's directory (holds its key; default $LODE_HOME/registry).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List a registry's publisher approvals (its own and its peers').
    Approvals {
        #[arg(long, value_name = "TICKET")]
        registry: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Publish a signed taint notice (takedown) at the registry this user operates: mirrors
    /// that follow it delete the dataset or blob.
    Taint {
        /// A dataset id to take down.
        #[arg(
            long,
            value_name = "ID",
            required_unless_present = "blob",
            conflicts_with = "blob"
        )]
        dataset: Option<String>,
        /// One blob (BLAKE3 id) to take down, in whatever dataset.
        #[arg(long, value_name = "ID")]
        blob: Option<String>,
        /// Why (public).
        #[arg(long)]
        reason: String,
        /// The running registry's ticket.
        #[arg(long, value_name = "TICKET")]
        registry: String,
        /// The registry's directory (holds its key; default $LODE_HOME/registry).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List a registry's taint notices (public and signed: anyone can audit them).
    Notices {
        #[arg(long, value_name = "TICKET")]
        registry: String,
        #[command(flatten)]
        net: NetArgs,
    },
}

fn parse_id(what: &str, s: &str) -> Result<[u8; 32], Error> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut id)
        .map_err(|_| Error::Other(format!("{what} is 64 hex digits, not {s:?}")))?;
    Ok(id)
}

pub fn cmd_registry(ctx: &Ctx, ui: &mut Ui, args: RegistryArgs) -> CliResult {
    match args.action {
        RegistryAction::Serve {
            dir,
            peers,
            sync,
            curated,
            curated_by,
            max_per_publisher,
            max_per_peer,
            net,
        } => {
            let curators: Vec<[u8; 32]> = (curated_by.iter())
                .map(|t| t.parse::<RegistryTicket>().map(|t| t.key()))
                .collect::<Result<_, _>>()?;
            if max_per_publisher == 0 || max_per_peer == 0 {
                return Err(Error::Other(
                    "--max-per-publisher and --max-per-peer take at least 1".into(),
                )
                .into());
            }
            let policy = registry::Policy {
                curated: curated || !curators.is_empty(),
                curators,
                per_publisher: max_per_publisher,
                per_peer: max_per_peer,
            };
            let dir = dir
                .map(|d| ctx.cwd.join(d))
                .unwrap_or_else(|| registry::default_dir(&ctx.home));
            let peers: Vec<RegistryTicket> =
                peers.iter().map(|p| p.parse()).collect::<Result<_, _>>()?;
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
        }
        RegistryAction::Taint {
            dataset,
            blob,
            reason,
            registry: reg,
            dir,
            net,
        } => {
            let target = match (dataset, blob) {
                (Some(d), _) => Tainted::Dataset(parse_id("a dataset id", &d)?),
                (None, Some(b)) => Tainted::Blob(parse_id("a blob id", &b)?),
                (None, None) => {
                    return Err(Error::Other("give --dataset ID or --blob ID".into()).into())
                }
            };
            let reg: RegistryTicket = reg.parse()?;
            let dir = dir
                .map(|d| ctx.cwd.join(d))
                .unwrap_or_else(|| registry::default_dir(&ctx.home));
            let notice = runtime()?.block_on(registry::taint(
                &dir,
                &reg,
                target,
                &reason,
                &net.options(),
            ))?;
            let id = hex::encode(notice.id());
            if ui.json {
                ui.json(&serde_json::json!({
                    "notice": id,
                    "target": notice.body.target.to_string(),
                    "reason": notice.body.reason,
                }))?;
            } else {
                ui.line(format!("notice {id}: tainted {}", notice.body.target))?;
            }
        }
        RegistryAction::Approve {
            publisher,
            revoke,
            note,
            registry: reg,
            dir,
            net,
        } => {
            let (publisher, _) = lode::ops::access::parse_audience(&publisher)?;
            let reg: RegistryTicket = reg.parse()?;
            let dir = dir
                .map(|d| ctx.cwd.join(d))
                .unwrap_or_else(|| registry::default_dir(&ctx.home));
            let a = runtime()?.block_on(registry::approve(
                &dir,
                &reg,
                publisher,
                !revoke,
                &note,
                &net.options(),
            ))?;
            let who = hex::encode(a.body.publisher);
            if ui.json {
                ui.json(&serde_json::json!({
                    "approval": hex::encode(a.id()),
                    "publisher": who,
                    "approved": a.body.approved,
                    "note": a.body.note,
                }))?;
            } else if a.body.approved {
                ui.line(format!("approved publisher {who}"))?;
            } else {
                ui.line(format!("withdrew the approval of publisher {who}"))?;
            }
        }
        RegistryAction::Approvals { registry: reg, net } => {
            let reg: RegistryTicket = reg.parse()?;
            let list = runtime()?.block_on(registry::approvals(&reg, &net.options()))?;
            if ui.json {
                let rows: Vec<_> = (list.iter())
                    .map(|a| {
                        serde_json::json!({
                            "approval": hex::encode(a.id()),
                            "registry": hex::encode(a.body.registry),
                            "by_this_registry": a.body.registry == reg.key(),
                            "publisher": hex::encode(a.body.publisher),
                            "approved": a.body.approved,
                            "note": a.body.note,
                            "time": a.body.time,
                        })
                    })
                    .collect();
                ui.json(&rows)?;
            } else {
                for a in &list {
                    ui.line(format!(
                        "{}  {}  by {}{}  {}",
                        hex::encode(a.body.publisher),
                        if a.body.approved {
                            "approved"
                        } else {
                            "withdrawn"
                        },
                        &hex::encode(a.body.registry)[..16],
                        if a.body.registry == reg.key() {
                            ""
                        } else {
                            " (a peer registry)"
                        },
                        a.body.note
                    ))?;
                }
            }
        }
        RegistryAction::Notices { registry: reg, net } => {
            let reg: RegistryTicket = reg.parse()?;
            let list = runtime()?.block_on(registry::notices(&reg, &net.options()))?;
            let rows: Vec<_> = list
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "notice": hex::encode(n.id()),
                        "registry": hex::encode(n.body.registry),
                        "by_this_registry": n.body.registry == reg.key(),
                        "target": n.body.target.to_string(),
                        "reason": n.body.reason,
                        "time": n.body.time,
                    })
                })
                .collect();
            if ui.json {
                ui.json(&rows)?;
            } else {
                for n in &list {
                    ui.line(format!(
                        "{}  {}  by {}{}  {}",
                        &hex::encode(n.id())[..16],
                        n.body.target,
                        &hex::encode(n.body.registry)[..16],
                        if n.body.registry == reg.key() {
                            ""
                        } else {
                            " (a peer registry)"
                        },
                        n.body.reason
                    ))?;
                }
            }
        }
    }
    Ok(())
}
