//! The `lode registry approve` command.

use std::path::PathBuf;

use clap::Args;
use lode::net::registry;
use lode::ticket::RegistryTicket;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// Approve a publisher at the curated registry this user operates (or, with --revoke,
/// withdraw the approval): a signed approval that replicas honour too.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode registry approve lodeid1… --note \"Lee lab\" --registry lodereg1…\n  lode registry approve 5f2c…e1 --revoke --registry lodereg1…"
)]
pub struct ApproveArgs {
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
}

pub fn cmd_approve(ctx: &Ctx, ui: &mut Ui, args: ApproveArgs) -> CliResult {
    let ApproveArgs {
        publisher,
        revoke,
        note,
        registry: reg,
        dir,
        net,
    } = args;
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
    Ok(())
}
