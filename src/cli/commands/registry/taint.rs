//! The `lode registry taint` command.

use clap::Args;
use lode::catalog::Tainted;
use lode::net::registry;
use lode::Error;

use super::{parse_id, OperatorArgs};
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// Publish a signed taint notice (takedown) at the registry this user operates: mirrors
/// that follow it delete the dataset or blob.
#[derive(Args)]
pub struct TaintArgs {
    /// A dataset id to take down.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "blob",
        conflicts_with = "blob"
    )]
    dataset: Option<String>,
    /// One blob (BLAKE3 id) to take down, in whatever dataset.
    #[arg(long, value_name = "ID")]
    blob: Option<String>,
    /// Why (public).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    operator: OperatorArgs,
}

pub fn cmd_taint(ctx: &Ctx, ui: &mut Ui, args: TaintArgs) -> CliResult {
    let TaintArgs {
        dataset,
        blob,
        reason,
        operator,
    } = args;
    let target = match (dataset, blob) {
        (Some(d), _) => Tainted::Dataset(parse_id("a dataset id", &d)?),
        (None, Some(b)) => Tainted::Blob(parse_id("a blob id", &b)?),
        (None, None) => return Err(Error::Other("give --dataset ID or --blob ID".into()).into()),
    };
    let (dir, reg, net) = operator.open(ctx)?;
    let notice = runtime()?.block_on(registry::taint(&dir, &reg, target, &reason, &net))?;
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
    Ok(())
}
