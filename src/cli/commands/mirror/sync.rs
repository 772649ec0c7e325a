//! The `lode mirror sync` command.

use clap::Args;

use crate::cli::args::{MirrorShareArgs, NetArgs};
use crate::cli::output::{report_round, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Fetch every mirror from its origin now and keep each within its quota, adopt what was
/// volunteered for (`lode mirror volunteer`) and report it (what `lode serve --mirrors
/// --follow` does periodically).
#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    share: MirrorShareArgs,
}

pub fn cmd_sync(ctx: &Ctx, ui: &mut Ui, args: SyncArgs) -> CliResult {
    let SyncArgs { net, share } = args;
    let round = runtime()?.block_on(lode::net::volunteer::follow(
        &ctx.home,
        &share.options(&net),
        &|| {},
    ));
    report_round(&round, ui.quiet || ui.json);
    let mut failed = None;
    let mut done = Vec::new();
    let adopted: Vec<_> = (round.adopted.iter())
        .filter(|a| a.result.is_ok())
        .collect();
    for (_, r) in round.mirrors {
        match r {
            Ok(f) => done.push(f),
            Err(e) => failed = Some(e),
        }
    }
    if ui.json {
        ui.json(
            &serde_json::json!({ "mirrors": done, "notices": round.notices, "adopted": adopted }),
        )?;
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(())
}
