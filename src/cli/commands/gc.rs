//! The `lode gc` command.

use clap::Args;
use lode::ops;

use crate::cli::output::{human, Ui};
use crate::cli::{CliResult, Ctx};

/// Delete objects that no commit, tag or staged file uses.
#[derive(Args)]
#[command(after_help = "Example:\n  lode gc --dry-run")]
pub struct GcArgs {
    #[arg(long)]
    dry_run: bool,
}

pub fn cmd_gc(ctx: &Ctx, ui: &mut Ui, args: GcArgs) -> CliResult {
    let GcArgs { dry_run } = args;
    let repo = ctx.repo()?;
    let r = ops::maintain::gc(&repo, dry_run)?;
    if ui.json {
        ui.json(&r)?;
    } else if !ui.quiet {
        let verb = if dry_run { "would free" } else { "freed" };
        ui.line(format!(
            "{verb} {} ({} objects, {} temp files, {} cached outboards); {} objects kept",
            human(r.bytes_freed),
            r.objects_removed,
            r.temp_files_removed,
            r.outboards_removed,
            r.objects_kept
        ))?;
    }
    Ok(())
}
