//! The `lode config` command.

use clap::Args;
use lode::Error;
use serde::Serialize;

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Show or change repository settings (`private true|false`).
#[derive(Args)]
#[command(after_help = "Examples:\n  lode config\n  lode config private true")]
pub struct ConfigArgs {
    /// The setting: `private` (without it: show all settings).
    key: Option<String>,
    /// The new value, e.g. true or false (without it: show KEY).
    value: Option<String>,
}

pub fn cmd_config(ctx: &Ctx, ui: &mut Ui, args: ConfigArgs) -> CliResult {
    let ConfigArgs { key, value } = args;
    let repo = ctx.repo()?;
    match (key.as_deref(), value.as_deref()) {
        (None, _) | (Some("private"), None) => {
            let private = lode::config::is_private(&repo)?;
            if ui.json {
                #[derive(Serialize)]
                struct J {
                    private: bool,
                }
                ui.json(&J { private })?;
            } else {
                ui.line(format!("private\t{private}"))?;
            }
        }
        (Some("private"), Some(v)) => {
            let on = match v {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => {
                    return Err(
                        Error::Other(format!("private takes true or false, not {v:?}")).into(),
                    )
                }
            };
            lode::config::set_private(&repo, on)?;
            if ui.json {
                #[derive(Serialize)]
                struct J {
                    private: bool,
                }
                ui.json(&J { private: on })?;
            }
        }
        (Some(k), _) => {
            return Err(Error::Other(format!("unknown setting {k:?} (settings: private)")).into())
        }
    }
    Ok(())
}
