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
    /// Also challenge each storage manager for a random range of the head it claims,
    /// checked against the BLAKE3 tree (this checks; only the registry's own challenges drop
    /// records).
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_copies(ctx: &Ctx, ui: &mut Ui, args: CopiesArgs) -> CliResult {
    let CopiesArgs {
        dataset,
        registry: reg,
        check,
        net,
    } = args;
    let reg: RegistryTicket = reg.parse()?;
    let found = runtime()?.block_on(registry::copies(
        &reg,
        dataset.as_deref(),
        check,
        &net.options(),
    ))?;
    registry::remember(&ctx.home, &reg);
    if ui.json {
        ui.json(&found)?;
        return Ok(());
    }
    for c in &found {
        let wanted = match c.wanted {
            0 => String::new(),
            n => format!(" ({n} asked)"),
        };
        ui.line(format!(
            "{}  {}  {} {}{wanted}",
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
        for v in &c.checks {
            let what = match (&v.object, v.range) {
                (Some(o), Some((a, b))) => format!("bytes {a}..{b} of {}", &o[..12]),
                _ => "its head and tree".to_string(),
            };
            match &v.error {
                None => ui.line(format!(
                    "  check {}  passed: served {what}",
                    &v.device[..12]
                ))?,
                Some(e) => ui.line(format!("  check {}  FAILED: {e}", &v.device[..12]))?,
            }
        }
    }
    Ok(())
}
