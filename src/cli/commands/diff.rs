//! The `lode diff` command.

use clap::Args;
use lode::{ops, Error};

use crate::cli::output::{print_changes, Ui};
use crate::cli::{CliResult, Ctx};

/// List changed files: HEAD vs working tree, REV vs working tree, or REV vs REV.
#[derive(Args)]
#[command(after_help = "Example:\n  lode diff v1 HEAD")]
pub struct DiffArgs {
    /// None: HEAD vs the working tree; one: REV vs the working tree; two: REV vs REV.
    revs: Vec<String>,
}

pub fn cmd_diff(ctx: &Ctx, ui: &mut Ui, args: DiffArgs) -> CliResult {
    let DiffArgs { revs } = args;
    if revs.len() > 2 {
        return Err(Error::Other("diff takes at most two revisions".into()).into());
    }
    let repo = ctx.repo()?;
    let changes = ops::history::diff(
        &repo,
        revs.first().map(String::as_str),
        revs.get(1).map(String::as_str),
    )?;
    if ui.json {
        ui.json(&changes)?;
    } else {
        print_changes(ui, &changes)?;
    }
    Ok(())
}
