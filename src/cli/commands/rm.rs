//! The `lode rm` command.

use std::path::PathBuf;

use clap::Args;
use lode::ops;

use crate::cli::args::repo_paths;
use crate::cli::output::{qp, Ui};
use crate::cli::{CliResult, Ctx};

/// Unstage paths and delete them from the working tree.
#[derive(Args)]
#[command(after_help = "Example:\n  lode rm old/ --cached")]
pub struct RmArgs {
    #[arg(required = true)]
    /// Staged files or directories to unstage (and delete, unless --cached).
    paths: Vec<PathBuf>,
    /// Keep the files in the working tree.
    #[arg(long)]
    cached: bool,
    /// Delete even files that no commit holds or that differ from what is staged.
    #[arg(short, long)]
    force: bool,
}

pub fn cmd_rm(ctx: &Ctx, ui: &mut Ui, args: RmArgs) -> CliResult {
    let RmArgs {
        paths,
        cached,
        force,
    } = args;
    let repo = ctx.repo()?;
    let rels = repo_paths(&repo, &ctx.cwd, &paths)?;
    let r = ops::add::rm(&repo, &rels, cached, force)?;
    if ui.json {
        ui.json(&r)?;
    } else if !ui.quiet {
        for p in &r.removed {
            ui.line(format!("rm {}", qp(p)))?;
        }
    }
    Ok(())
}
