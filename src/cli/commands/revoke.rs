//! The `lode revoke` command.

use clap::Args;
use lode::ops;
use serde::Serialize;

use crate::cli::args::NetArgs;
use crate::cli::output::Ui;
use crate::cli::{runtime, CliResult, Ctx};

/// Revoke a ticket (whole, or by id from `lode grants`), or with --key every ticket of a device.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode revoke 3fa9c1\n  lode revoke --key 5f2c…e1\nData already downloaded cannot be recalled; new commits are encrypted to a new key."
)]
pub struct RevokeArgs {
    /// The ticket to revoke: a `lodecap1…` ticket, or a grant id (or a unique prefix) from `lode grants`; with --key, a device id.
    what: String,
    /// WHAT is a device id: revoke every ticket issued to or by it.
    #[arg(long)]
    key: bool,
    #[arg(long, default_value = "")]
    note: String,
    #[command(flatten)]
    net: NetArgs,
}

pub fn cmd_revoke(ctx: &Ctx, ui: &mut Ui, args: RevokeArgs) -> CliResult {
    let RevokeArgs {
        what,
        key,
        note,
        net,
    } = args;
    let repo = ctx.repo()?;
    let r = ops::access::revoke(&repo, &what, key, &note)?;
    // Tell the known peers (the remotes) at once; the others learn it with the next
    // head they fetch.
    let told = runtime()?.block_on(lode::net::push::push_revocations(&repo, &net.options()))?;
    if ui.json {
        #[derive(Serialize)]
        struct J<'a> {
            #[serde(flatten)]
            revoked: &'a ops::access::RevokeReport,
            peers: &'a [lode::net::push::RevocationPush],
        }
        ui.json(&J {
            revoked: &r,
            peers: &told,
        })?;
    } else {
        ui.note(format!("revoked {} {}", r.kind, &r.target[..12]));
        for t in &told {
            match (&t.new, &t.error) {
                (Some(_), _) => ui.note(format!("told {} ({})", t.remote, t.peer)),
                (None, e) => ui.note(format!(
                    "could not tell {} ({}): {}; it learns the revocation with its next fetch",
                    t.remote,
                    t.peer,
                    e.as_deref().unwrap_or("no answer")
                )),
            }
        }
        ui.note("other peers learn it with the next head they fetch; data already downloaded cannot be recalled");
    }
    Ok(())
}
