//! The registry commands: `lode registry serve|approve|approvals|taint|notices`,
//! `lode publish`, `lode search`.

use std::io::Write;
use std::time::Duration;

use lode::catalog::{Entry, Tainted};
use lode::net::registry;
use lode::ticket::{RegistryTicket, Ticket};
use lode::Error;
use serde::Serialize;

use super::{runtime, shutdown_signal, CliResult, Ctx, NetArgs, RegistryAction, Ui};

/// An entry as `search --json` shows it.
#[derive(Serialize)]
struct EntryJson {
    name: String,
    dataset: String,
    title: String,
    description: String,
    license: String,
    keywords: Vec<String>,
    ticket: String,
    seq: u64,
    publisher: String,
}

fn entry_json(e: &Entry) -> EntryJson {
    let b = &e.body;
    EntryJson {
        name: b.name.clone(),
        dataset: hex::encode(b.dataset),
        title: b.title.clone(),
        description: b.description.clone(),
        license: b.license.clone(),
        keywords: b.keywords.clone(),
        ticket: Ticket {
            dataset: b.dataset,
            providers: b.providers.clone(),
        }
        .to_string(),
        seq: b.seq,
        publisher: hex::encode(b.publisher),
    }
}

fn parse_id(what: &str, s: &str) -> Result<[u8; 32], Error> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut id)
        .map_err(|_| Error::Other(format!("{what} is 64 hex digits, not {s:?}")))?;
    Ok(id)
}

pub(super) fn run(ctx: &Ctx, ui: &mut Ui, action: RegistryAction) -> CliResult {
    match action {
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

pub(super) fn publish(
    ctx: &Ctx,
    ui: &mut Ui,
    name: Option<String>,
    reg: &str,
    providers: &[String],
    with_metadata: bool,
    net: &NetArgs,
) -> CliResult {
    let repo = ctx.repo()?;
    let reg: RegistryTicket = reg.parse()?;
    let extra: Vec<Ticket> = providers
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()?;
    let name = match name {
        Some(n) => n,
        None => repo
            .root()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_lowercase(),
    };
    let r = runtime()?.block_on(registry::publish(
        &repo,
        &reg,
        &name,
        &extra,
        with_metadata,
        &net.options(),
    ))?;
    if ui.json {
        ui.json(&r)?;
    } else if r.new {
        ui.note(format!(
            "published {} as {:?} with {} provider(s)",
            &r.dataset[..16],
            r.name,
            r.providers
        ));
        if !r.metadata {
            ui.note("a restricted dataset: its metadata stays private (--with-metadata lists it)");
        }
    } else {
        ui.note(format!("the registry already lists {:?} as it is", r.name));
    }
    Ok(())
}

pub(super) fn search(ctx: &Ctx, ui: &mut Ui, term: &str, reg: &str, net: &NetArgs) -> CliResult {
    let reg: RegistryTicket = reg.parse()?;
    let found = runtime()?.block_on(registry::search(&reg, term, &net.options()))?;
    registry::remember(&ctx.home, &reg);
    if ui.json {
        ui.json(&found.iter().map(entry_json).collect::<Vec<_>>())?;
    } else {
        for e in &found {
            let b = &e.body;
            ui.line(format!(
                "{}  {}  {}{}",
                b.name,
                &hex::encode(b.dataset)[..16],
                b.title,
                if b.license.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", b.license)
                }
            ))?;
        }
        if found.is_empty() {
            ui.note(format!("no dataset matches {term:?}"));
        }
    }
    Ok(())
}
