//! The `lode verify` command.

use lode::ops;
use lode::progress::Progress as _;

use crate::cli::output::{human, qp, Ui};
use crate::cli::{CliError, CliResult, Ctx};

pub fn cmd_verify(ctx: &Ctx, ui: &mut Ui) -> CliResult {
    let repo = ctx.repo()?;
    let bar = ui.bar("verify");
    let r = ops::maintain::verify(&repo, &bar)?;
    bar.finish();
    drop(bar);
    if ui.json {
        ui.json(&r)?;
    } else {
        for d in &r.damaged {
            ui.line(format!(
                "damaged {} {}: {}",
                d.id,
                d.path
                    .as_deref()
                    .map(qp)
                    .unwrap_or_else(|| "(no path)".into()),
                d.problem
            ))?;
        }
        ui.note(format!(
            "{} objects ({}) checked, {} damaged",
            r.objects,
            human(r.bytes),
            r.damaged.len()
        ));
        if r.absent > 0 {
            ui.note(format!(
                "{} file content(s) absent in this lazy clone (not damage: `lode get PATH` fetches them)",
                r.absent
            ));
        }
    }
    if !r.damaged.is_empty() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("error: {} damaged object(s) in {}; hint: fetch them again from a peer or restore .lode from a backup", r.damaged.len(), repo.root().display());
        }
        return Err(CliError::Failed);
    }
    Ok(())
}
