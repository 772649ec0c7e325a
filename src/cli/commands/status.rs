//! The `lode status` command.

use lode::ops;

use crate::cli::output::{print_status, Ui};
use crate::cli::{CliResult, Ctx};

pub fn cmd_status(ctx: &Ctx, ui: &mut Ui) -> CliResult {
    let repo = ctx.repo()?;
    let s = ops::status::status(&repo)?;
    if ui.json {
        ui.json(&s)?;
    } else {
        print_status(ui, &s)?;
    }
    Ok(())
}
