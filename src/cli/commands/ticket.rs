//! The `lode ticket` command.

use clap::Args;
use lode::Error;

use crate::cli::args::parse_ticket;
use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Print the ticket of the `lode serve` running for this repository, optionally with
/// the providers of other tickets of the same dataset (its mirrors) added.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode ticket\n  lode ticket --add lode1…mirror1 --add lode1…mirror2   # one ticket, three providers"
)]
pub struct TicketArgs {
    /// Another ticket of the same dataset whose providers to include.
    #[arg(long = "add", value_name = "TICKET")]
    add: Vec<String>,
}

pub fn cmd_ticket(ctx: &Ctx, ui: &mut Ui, args: TicketArgs) -> CliResult {
    let TicketArgs { add } = args;
    let repo = ctx.repo()?;
    let merged = |mut t: lode::ticket::Ticket| -> Result<_, Error> {
        for other in &add {
            let o = parse_ticket(other)?;
            if o.dataset != t.dataset {
                return Err(Error::Other(
                    "--add takes tickets of the same dataset".into(),
                ));
            }
            for p in o.providers {
                if !t.providers.iter().any(|q| q.id == p.id) {
                    t.providers.push(p);
                }
            }
        }
        Ok(t)
    };
    match lode::net::fetch::served_ticket(&repo)?
        .map(merged)
        .transpose()?
    {
        Some(t) if ui.json => ui.json(&serde_json::json!({ "ticket": t.to_string() }))?,
        Some(t) => ui.line(t.to_string())?,
        None => {
            return Err(Error::Other(format!(
                "no `lode serve` is running for {}; start one with `lode serve`",
                repo.root().display()
            ))
            .into())
        }
    }
    Ok(())
}
