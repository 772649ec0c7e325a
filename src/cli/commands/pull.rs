//! The `lode pull` command.

use clap::Args;

use super::fetch::{transfer, FromRemote};
use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Fetch, then fast-forward main and the working tree (refuses to overwrite changes).
#[derive(Args)]
#[command(after_help = "Example:\n  lode pull")]
pub struct PullArgs {
    #[command(flatten)]
    from: FromRemote,
}

pub fn cmd_pull(ctx: &Ctx, ui: &mut Ui, args: PullArgs) -> CliResult {
    transfer(ctx, ui, args.from, true)
}
