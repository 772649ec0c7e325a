//! The `lode copies` command.

use clap::Args;
use lode::net::registry;
use lode::ticket::RegistryTicket;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// Show how many storage managers hold which head of a dataset (or of every dataset a
/// registry lists), as their signed holding records claim.
#[derive(Args)]
#[command(after_help = "Example:\n  lode copies worm-tracks --registry lodereg1…")]
pub struct CopiesArgs {
    /// The dataset's name at the registry or its id (hex); every listed dataset when omitted.
    dataset: Option<String>,
    /// The registry's ticket (lodereg1…) whose holding records to count.
    #[arg(long, value_name = "TICKET")]
    registry: String,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_copies(ctx: &Ctx, ui: &mut Ui, args: CopiesArgs) -> CliResult {
    let CopiesArgs {
        dataset,
        registry: reg,
        net,
    } = args;
    let reg: RegistryTicket = reg.parse()?;
    let found = runtime()?.block_on(registry::copies(&reg, dataset.as_deref(), &net.options()))?;
    registry::remember(&ctx.home, &reg);
    if ui.json {
        ui.json(&found)?;
        return Ok(());
    }
    for c in &found {
        ui.line(format!(
            "{}  {}  {} {}",
            c.name,
            &c.dataset[..16],
            c.copies,
            if c.copies == 1 { "copy" } else { "copies" }
        ))?;
        for h in &c.heads {
            ui.line(format!(
                "  seq {}  commit {}  held by {}",
                h.seq,
                &h.commit[..12],
                h.holders
                    .iter()
                    .map(|d| &d[..12])
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
        }
    }
    Ok(())
}
