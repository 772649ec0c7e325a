//! The `lode mirror unfollow` command.

use clap::Args;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Stop obeying a registry's taint notices (by registry id or unique prefix, as
/// `lode mirror list` shows); what was deleted stays deleted.
#[derive(Args)]
pub struct UnfollowArgs {
    /// The registry's id (or a unique prefix), as `lode mirror list` shows it.
    registry: String,
}

pub fn cmd_unfollow(ctx: &Ctx, ui: &mut Ui, args: UnfollowArgs) -> CliResult {
    let UnfollowArgs { registry } = args;
    let key = lode::net::mirror::unfollow_registry(&ctx.home, &registry)?;
    ui.note(format!("mirrors no longer obey registry {}", &key[..16]));
    Ok(())
}
