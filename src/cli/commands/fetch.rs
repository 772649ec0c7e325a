//! The `lode fetch` command.

use clap::Args;
use lode::progress::Progress as _;

use crate::cli::args::{CapArg, NetArgs, ShareArgs};
use crate::cli::output::{print_transfer, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Fetch new commits and objects from a remote (default origin) without touching files.
#[derive(Args)]
#[command(after_help = "Example:\n  lode fetch origin")]
pub struct FetchArgs {
    /// The remote to fetch from (default: origin).
    remote: Option<String>,
    #[command(flatten)]
    cap: CapArg,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    share: ShareArgs,
}

pub fn cmd_fetch(ctx: &Ctx, ui: &mut Ui, args: FetchArgs) -> CliResult {
    let FetchArgs {
        remote,
        cap,
        net,
        share,
    } = args;
    let repo = ctx.repo()?;
    let name = remote.unwrap_or_else(|| "origin".into());
    let bar = ui.bar("fetch");
    let r = runtime()?.block_on(lode::net::fetch::fetch(
        &repo,
        &name,
        cap.bundle()?,
        &share.options(&net),
        &bar,
    ))?;
    bar.finish();
    drop(bar);
    print_transfer(ui, "fetched", &r)?;
    Ok(())
}
