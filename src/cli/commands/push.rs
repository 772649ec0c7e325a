//! The `lode push` command.

use clap::Args;

use crate::cli::args::{CapArg, NetArgs};
use crate::cli::output::{human, Ui};
use crate::cli::{runtime, CliResult, Ctx};

/// Offer main to a remote (default origin); the serving peer fetches what it lacks and
/// fast-forwards (refused if it moved on: pull first, or --force).
#[derive(Args)]
#[command(after_help = "Example:\n  lode push origin")]
pub struct PushArgs {
    /// The remote to push to (default: origin).
    remote: Option<String>,
    /// Move the remote's main even when it is not a fast-forward.
    #[arg(short, long)]
    force: bool,
    #[command(flatten)]
    cap: CapArg,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_push(ctx: &Ctx, ui: &mut Ui, args: PushArgs) -> CliResult {
    let PushArgs {
        remote,
        force,
        cap,
        net,
    } = args;
    let repo = ctx.repo()?;
    if let Some(c) = cap.bundle()? {
        lode::net::fetch::use_capability(&repo, &c)?;
    }
    let name = remote.unwrap_or_else(|| "origin".into());
    let r = runtime()?.block_on(lode::net::push::push(&repo, &name, force, &net.options()))?;
    ui.report(&r, |r| {
        format!(
            "pushed {} to {}: it fetched {} objects, {}",
            &r.commit[..12],
            r.peer,
            r.objects_sent,
            human(r.bytes_sent)
        )
    })?;
    Ok(())
}
