//! The `lode mirror remove` command.

use clap::Args;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Stop mirroring a dataset (by id or unique prefix) and delete its copy.
#[derive(Args)]
pub struct RemoveArgs {
    /// The mirrored dataset's id (or a unique prefix, as `lode mirror list` shows it).
    dataset: String,
}

pub fn cmd_remove(ctx: &Ctx, ui: &mut Ui, args: RemoveArgs) -> CliResult {
    let RemoveArgs { dataset } = args;
    let id = lode::net::mirror::remove(&ctx.home, &dataset)?;
    ui.note(format!("stopped mirroring {id} and deleted its copy"));
    Ok(())
}
