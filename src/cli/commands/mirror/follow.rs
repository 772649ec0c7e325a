//! The `lode mirror follow` command.

use clap::Args;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

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
