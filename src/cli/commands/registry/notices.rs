//! The `lode registry notices` command.

use clap::Args;
use lode::net::registry;
use lode::ticket::RegistryTicket;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// List a registry's taint notices (public and signed: anyone can audit them).
#[derive(Args)]
pub struct NoticesArgs {
    #[arg(long, value_name = "TICKET")]
    registry: String,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_notices(_ctx: &Ctx, ui: &mut Ui, args: NoticesArgs) -> CliResult {
    let NoticesArgs { registry: reg, net } = args;
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
    Ok(())
}
