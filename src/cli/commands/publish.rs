//! The `lode publish` command.

use clap::Args;
use lode::net::registry;
use lode::ticket::{RegistryTicket, Ticket};

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// List this dataset at a registry under NAME (default: the directory name), with its
/// title, description, license, keywords and the providers of its running `lode serve`.
#[derive(Args)]
#[command(after_help = "Example:\n  lode serve &\n  lode publish worm-tracks --registry lodereg1…")]
pub struct PublishArgs {
    /// The name to list the dataset under (default: the one it was published under before).
    name: Option<String>,
    /// The registry's ticket (lodereg1…), printed by `lode registry serve`.
    #[arg(long, value_name = "TICKET")]
    registry: String,
    /// Another ticket of this dataset (a mirror) whose providers to list too.
    #[arg(long = "provider", value_name = "TICKET")]
    providers: Vec<String>,
    /// For a restricted dataset: also list its title, description, license and
    /// keywords (otherwise only the name and providers are public).
    #[arg(long)]
    with_metadata: bool,
    /// Ask for N storage managers to hold the current version: volunteers of its subject
    /// adopt it until N hold it, and this says when N cannot be reached (0: no minimum;
    /// default: as many as the listing there asked before).
    #[arg(long, value_name = "N")]
    copies: Option<u32>,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_publish(ctx: &Ctx, ui: &mut Ui, args: PublishArgs) -> CliResult {
    let PublishArgs {
        name,
        registry: reg,
        providers,
        with_metadata,
        copies,
        net,
    } = args;
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
        copies,
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
    if let (Some(c), false) = (&r.copies, ui.json) {
        copies_note(ui, c);
    }
    Ok(())
}

/// Says how many of the copies asked for can be had, and what to do when too few.
fn copies_note(ui: &mut Ui, c: &registry::CopiesAsked) {
    let managers = |n: usize| match n {
        1 => "1 storage manager".to_string(),
        n => format!("{n} storage managers"),
    };
    let held = format!("{} hold(s) the current version", managers(c.holding));
    if c.reachable() {
        ui.note(format!(
            "{} copies asked: {held}; {} volunteer for it",
            c.wanted,
            managers(c.volunteers)
        ));
        return;
    }
    let why = if c.restricted {
        "a restricted dataset is not adopted by volunteers (each needs a relay ticket:          `lode ticket --relay` for it, then `lode mirror add` on its machine)"
            .to_string()
    } else if c.too_small > 0 {
        format!(
            "{} more volunteer(s) for its subject but take nothing of {} bytes",
            c.too_small, c.bytes
        )
    } else {
        "no other storage manager volunteers for its subject".to_string()
    };
    ui.note(format!(
        "{} volunteer for this dataset; {} copies asked — {} cannot be reached: {why}. \
         Ask more storage managers to run `lode mirror volunteer --registry TICKET --subject \
         WORD` with a word of its title or keywords (or --all), or ask for fewer with \
         --copies; {held}",
        managers(c.volunteers),
        c.wanted,
        c.wanted,
    ));
}
