//! The `lode commit` command.

use clap::Args;
use lode::ops;

use crate::cli::output::{first_line, human, Ui};
use crate::cli::{CliResult, Ctx};

/// Record the staged tree and pending metadata as a commit signed by this device.
#[derive(Args)]
#[command(after_help = "Example:\n  lode commit -m \"add day 3 recordings\"")]
pub struct CommitArgs {
    #[arg(short, long)]
    message: String,
    /// Commit even if nothing changed.
    #[arg(long)]
    allow_empty: bool,
}

pub fn cmd_commit(ctx: &Ctx, ui: &mut Ui, args: CommitArgs) -> CliResult {
    let CommitArgs {
        message,
        allow_empty,
    } = args;
    let repo = ctx.repo()?;
    let r = ops::commit::commit(&repo, &message, allow_empty)?;
    if ui.json {
        ui.json(&r)?;
    } else if !ui.quiet {
        ui.line(format!(
            "[{}] {} ({} files, {})",
            &r.commit[..12],
            first_line(&message),
            r.files,
            human(r.bytes)
        ))?;
    }
    Ok(())
}
