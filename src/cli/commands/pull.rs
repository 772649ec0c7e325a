//! The `lode pull` command.

use clap::Args;
use lode::progress::Progress as _;

use crate::cli::args::{CapArg, NetArgs, ShareArgs};
use crate::cli::output::{print_transfer, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Fetch, then fast-forward main and the working tree (refuses to overwrite changes).
#[derive(Args)]
#[command(after_help = "Example:\n  lode pull")]
pub struct PullArgs {
    /// The remote to pull from (default: origin).
    remote: Option<String>,
    #[command(flatten)]
    cap: CapArg,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    share: ShareArgs,
}

pub fn cmd_pull(ctx: &Ctx, ui: &mut Ui, args: PullArgs) -> CliResult {
    let PullArgs {
        remote,
        cap,
        net,
        share,
    } = args;
    let repo = ctx.repo()?;
    let name = remote.unwrap_or_else(|| "origin".into());
    let bar = ui.bar("pull");
    let r = runtime()?.block_on(lode::net::fetch::pull(
        &repo,
        &name,
        cap.bundle()?,
        &share.options(&net),
        &bar,
    ))?;
    bar.finish();
    drop(bar);
    print_transfer(ui, "pulled", &r)?;
    Ok(())
}
