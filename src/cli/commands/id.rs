//! The `lode id` command.

use clap::Args;
use lode::keys::key_to_hex;
use serde::Serialize;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Print this device's public key (its identity) and its identity card.
#[derive(Args)]
#[command(after_help = "Examples:\n  lode id\n  lode id --card   # send this to a dataset owner")]
pub struct IdArgs {
    /// Print only the identity card (ed25519 key + age recipient, signed), as one string.
    #[arg(long)]
    card: bool,
}

pub fn cmd_id(ctx: &Ctx, ui: &mut Ui, args: IdArgs) -> CliResult {
    let IdArgs { card } = args;
    let key = ctx.home.device_key()?;
    let id = key_to_hex(&key.verifying_key());
    let c = ctx.home.card()?;
    if ui.json {
        #[derive(Serialize)]
        struct J {
            device: String,
            age_recipient: String,
            card: String,
        }
        ui.json(&J {
            device: id,
            age_recipient: c.body.age.clone(),
            card: c.to_string(),
        })?;
    } else if card {
        ui.line(c.to_string())?;
    } else {
        ui.line(id)?;
        ui.line(format!("age recipient: {}", c.body.age))?;
        ui.line(format!("identity card: {c}"))?;
    }
    Ok(())
}
