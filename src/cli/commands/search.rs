//! The `lode search` command.

use clap::Args;
use lode::catalog::Entry;
use lode::net::registry;
use lode::ticket::{RegistryTicket, Ticket};
use serde::Serialize;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// Find datasets at a registry by name, title, description or keyword.
#[derive(Args)]
#[command(after_help = "Example:\n  lode search elegans --registry lodereg1…")]
pub struct SearchArgs {
    /// Words to look for in names, titles, descriptions, authors and keywords.
    term: String,
    #[arg(long, value_name = "TICKET")]
    registry: String,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_search(ctx: &Ctx, ui: &mut Ui, args: SearchArgs) -> CliResult {
    let SearchArgs {
        term,
        registry: reg,
        net,
    } = args;
    search(ctx, ui, &term, &reg, &net)
}

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

fn search(ctx: &Ctx, ui: &mut Ui, term: &str, reg: &str, net: &NetArgs) -> CliResult {
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
