//! The `lode registry taint` command.

use std::path::PathBuf;

use clap::Args;
use lode::catalog::Tainted;
use lode::net::registry;
use lode::ticket::RegistryTicket;
use lode::Error;

use super::parse_id;
use crate::cli::args::NetArgs;
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
    /// The running registry's ticket.
    #[arg(long, value_name = "TICKET")]
    registry: String,
    /// The registry's directory (holds its key; default $LODE_HOME/registry).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_taint(ctx: &Ctx, ui: &mut Ui, args: TaintArgs) -> CliResult {
    let TaintArgs {
        dataset,
        blob,
        reason,
        registry: reg,
        dir,
        net,
    } = args;
    let target = match (dataset, blob) {
        (Some(d), _) => Tainted::Dataset(parse_id("a dataset id", &d)?),
        (None, Some(b)) => Tainted::Blob(parse_id("a blob id", &b)?),
        (None, None) => return Err(Error::Other("give --dataset ID or --blob ID".into()).into()),
    };
    let reg: RegistryTicket = reg.parse()?;
    let dir = dir
        .map(|d| ctx.cwd.join(d))
        .unwrap_or_else(|| registry::default_dir(&ctx.home));
    let notice =
        runtime()?.block_on(registry::taint(&dir, &reg, target, &reason, &net.options()))?;
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
