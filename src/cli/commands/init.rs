//! The `lode init` command.

use std::path::PathBuf;

use clap::Args;
use lode::keys::key_to_hex;
use lode::Repo;
use serde::Serialize;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Create a repository (and the dataset key) in DIR, default the current directory.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode init worm-tracks && cd worm-tracks\n  lode init --private patient-scans"
)]
pub struct InitArgs {
    /// The directory to make the repository in (made if missing; default: the current one).
    dir: Option<PathBuf>,
    /// Make a restricted dataset: served only to holders of a ticket (`lode grant`).
    #[arg(long)]
    private: bool,
}

pub fn cmd_init(ctx: &Ctx, ui: &mut Ui, args: InitArgs) -> CliResult {
    let InitArgs { dir, private } = args;
    let dir = ctx.cwd.join(dir.unwrap_or_else(|| PathBuf::from(".")));
    let repo = Repo::init(&dir, ctx.home.clone(), ctx.opts.clone())?;
    if private {
        lode::config::set_private(&repo, true)?;
    }
    let dataset = key_to_hex(&repo.dataset_id()?);
    let device = key_to_hex(&repo.device_key()?.verifying_key());
    if ui.json {
        #[derive(Serialize)]
        struct J<'a> {
            root: String,
            dataset: &'a str,
            device: &'a str,
        }
        ui.json(&J {
            root: repo.root().display().to_string(),
            dataset: &dataset,
            device: &device,
        })?;
    } else if !ui.quiet {
        ui.line(format!(
            "Initialized lode repository in {}",
            repo.root().join(".lode").display()
        ))?;
        ui.line(format!("dataset id: {dataset}"))?;
    }
    Ok(())
}
