//! The `lode meta` command.

use clap::Args;
use lode::ops;

use crate::cli::output::{print_meta, Ui};
use crate::cli::{CliResult, Ctx};

/// Show or set dataset metadata (title, description, license, authors, keywords, any
/// other key); the next commit records changes.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode meta\n  lode meta title \"C. elegans tracks\"\n  lode meta license CC-BY-4.0\n  lode meta authors \"Lee, Ana\" \"Ortiz, Ben\"      # or \"Lee, Ana; Ortiz, Ben\"\n  lode meta extra.strain N2\n  lode meta --unset extra.strain"
)]
pub struct MetaArgs {
    /// The field: title, description, license (an SPDX identifier), authors, keywords, or
    /// extra.NAME for a field of your own. Without it: show all metadata.
    key: Option<String>,
    /// The value (without it: show KEY). authors and keywords take several values, each
    /// one item (`;` also separates items; keywords split on commas too).
    values: Vec<String>,
    /// Remove KEY.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["key", "values"])]
    unset: Option<String>,
}

pub fn cmd_meta(ctx: &Ctx, ui: &mut Ui, args: MetaArgs) -> CliResult {
    let MetaArgs { key, values, unset } = args;
    let repo = ctx.repo()?;
    let value = (!values.is_empty()).then_some(());
    let m = match (&key, &value, &unset) {
        (_, _, Some(k)) => Some(ops::meta::set(&repo, k, &[])?),
        (Some(k), Some(()), None) => Some(ops::meta::set(&repo, k, &values)?),
        _ => None,
    };
    let m = match m {
        Some(m) => m,
        None => repo.pending_metadata()?,
    };
    match (&key, &value, &unset) {
        (Some(k), None, None) => {
            let v = ops::meta::get(&m, k)?;
            if ui.json {
                ui.json(&v)?;
            } else if let Some(v) = v {
                ui.line(v)?;
            }
        }
        _ if ui.json => ui.json(&m)?,
        (None, None, None) => print_meta(ui, &m)?,
        _ => {}
    }
    Ok(())
}
