//! The `lode registry approve` command.

use clap::Args;
use lode::net::registry;

use super::OperatorArgs;
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
    #[command(flatten)]
    operator: OperatorArgs,
}

pub fn cmd_approve(ctx: &Ctx, ui: &mut Ui, args: ApproveArgs) -> CliResult {
    let ApproveArgs {
        publisher,
        revoke,
        note,
        operator,
    } = args;
    let (publisher, _) = lode::ops::access::parse_audience(&publisher)?;
    let (dir, reg, net) = operator.open(ctx)?;
    let a = runtime()?.block_on(registry::approve(
        &dir, &reg, publisher, !revoke, &note, &net,
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
