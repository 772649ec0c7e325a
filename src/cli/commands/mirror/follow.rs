//! The `lode mirror follow` command.

use clap::Args;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Obey the taint notices (takedowns) of a registry: at each sync round, mirrors delete
/// what its notices name, and say so.
#[derive(Args)]
pub struct FollowArgs {
    /// The registry's ticket (lodereg1…).
    registry: String,
}

pub fn cmd_follow(ctx: &Ctx, ui: &mut Ui, args: FollowArgs) -> CliResult {
    let FollowArgs { registry } = args;
    let reg: lode::ticket::RegistryTicket = registry.parse()?;
    let new = lode::net::mirror::follow_registry(&ctx.home, &reg)?;
    ui.note(if new {
        format!(
            "mirrors now obey the taint notices of registry {} (checked at each sync round)",
            &hex::encode(reg.key())[..16]
        )
    } else {
        "this registry was already followed".to_string()
    });
    Ok(())
}
