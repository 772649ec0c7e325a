//! The `lode fetch` command, and what it shares with `lode pull`.

use clap::Args;
use lode::progress::Progress as _;

use crate::cli::args::{CapArg, NetArgs, ShareArgs};
use crate::cli::output::{print_transfer, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Fetch new commits and objects from a remote (default origin) without touching files.
#[derive(Args)]
#[command(after_help = "Example:\n  lode fetch origin")]
pub struct FetchArgs {
    #[command(flatten)]
    from: FromRemote,
}

/// Where `fetch` and `pull` take from: a remote, the ticket presented and the network.
#[derive(Args)]
pub(crate) struct FromRemote {
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
    transfer(ctx, ui, args.from, false)
}

/// Fetches from the remote, then with `pull` fast-forwards main and the working tree, and
/// prints what came.
pub(crate) fn transfer(ctx: &Ctx, ui: &mut Ui, from: FromRemote, pull: bool) -> CliResult {
    let FromRemote {
        remote,
        cap,
        net,
        share,
    } = from;
    let repo = ctx.repo()?;
    let name = remote.unwrap_or_else(|| "origin".into());
    let (cap, net) = (cap.bundle()?, share.options(&net));
    let bar = ui.bar(if pull { "pull" } else { "fetch" });
    let r = runtime()?.block_on(async {
        if pull {
            lode::net::fetch::pull(&repo, &name, cap, &net, &bar).await
        } else {
            lode::net::fetch::fetch(&repo, &name, cap, &net, &bar).await
        }
    })?;
    bar.finish();
    drop(bar);
    print_transfer(ui, if pull { "pulled" } else { "fetched" }, &r)?;
    Ok(())
}
