//! The `lode registry approvals` command.

use clap::Args;
use lode::net::registry;
use lode::ticket::RegistryTicket;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// List a registry's publisher approvals (its own and its peers').
#[derive(Args)]
pub struct ApprovalsArgs {
    #[arg(long, value_name = "TICKET")]
    registry: String,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_approvals(_ctx: &Ctx, ui: &mut Ui, args: ApprovalsArgs) -> CliResult {
    let ApprovalsArgs { registry: reg, net } = args;
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
    Ok(())
}
