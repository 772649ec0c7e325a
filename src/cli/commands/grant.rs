//! The `lode grant` command.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use lode::{ops, Error};

use crate::cli::output::{grant_json, Ui};
use crate::cli::{CliResult, Ctx};

/// Issue a capability ticket bound to a peer (its identity card or device id).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode grant lodeid1… --read --expires 90d --note \"Lee lab\"\n  lode grant 5f2c…e1 --read --path tables/ --delegable 1\n  lode grant lodeid1… --relay   # a mirror: hosts ciphertext, cannot read"
)]
pub struct GrantArgs {
    /// The holder: an identity card (`lode id --card`) or a device id.
    who: String,
    /// Fetch and read the dataset.
    #[arg(long)]
    read: bool,
    /// Push new commits.
    #[arg(long)]
    write: bool,
    /// Fetch and host the dataset for others without reading it (mirrors).
    #[arg(long)]
    relay: bool,
    /// Limit to a path prefix (repeatable; default the whole dataset).
    #[arg(long = "path", value_name = "PREFIX")]
    paths: Vec<String>,
    /// Validity, e.g. 30d, 12h, 1y.
    #[arg(long, default_value = "30d")]
    expires: String,
    /// Let the holder delegate narrower tickets, N levels deep.
    #[arg(long, value_name = "N", default_value_t = 0)]
    delegable: u8,
    /// A note kept in the ticket (who, why).
    #[arg(long, default_value = "")]
    note: String,
    /// Also write the ticket to FILE (mode 0600), to send as an attachment; the holder
    /// passes it as `--ticket @FILE`.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn cmd_grant(ctx: &Ctx, ui: &mut Ui, args: GrantArgs) -> CliResult {
    let GrantArgs {
        who,
        read,
        write,
        relay,
        paths,
        expires,
        delegable,
        note,
        output,
    } = args;
    use lode::trust::Rights;
    let repo = ctx.repo()?;
    let mut rights = Rights(0);
    for (on, r) in [
        (read, Rights::READ),
        (write, Rights::WRITE),
        (relay, Rights::RELAY),
    ] {
        if on {
            rights = rights.with(r);
        }
    }
    if rights.0 == 0 {
        return Err(Error::Other(
            "say what the ticket allows: --read, --write and/or --relay".into(),
        )
        .into());
    }
    if delegable > 0 {
        rights = rights.with(Rights::GRANT);
    }
    let expires_in = lode::trust::parse_duration(&expires).ok_or_else(|| {
        Error::Other(format!(
            "--expires takes a duration like 30d, 12h or 1y, not {expires:?}"
        ))
    })?;
    let hints = lode::net::fetch::served_ticket(&repo)?
        .map(|t| t.providers)
        .unwrap_or_default();
    let opts = ops::access::GrantOptions {
        rights,
        scope: paths,
        expires_in,
        depth: delegable,
        note,
    };
    let bundle = ops::access::grant(&repo, &who, opts, hints)?;
    if let Some(file) = &output {
        let file = ctx.cwd.join(file);
        write_private(&file, format!("{bundle}\n").as_bytes())?;
    }
    if ui.json {
        ui.json(&grant_json(&bundle))?;
    } else {
        ui.line(bundle.to_string())?;
        let leaf = &bundle.leaf().body;
        ui.note(format!(
            "ticket {} for {}: {}, expires in {expires}",
            &hex::encode(bundle.leaf().id())[..12],
            &hex::encode(leaf.audience)[..12],
            leaf.rights.names()
        ));
        if bundle.hints.is_empty() {
            ui.note("no `lode serve` runs here, so the ticket carries no address: the holder also needs the dataset's address ticket (clone ADDRESS --ticket TICKET)");
        }
    }
    Ok(())
}

/// Writes `data` to `path` through a temp file beside it (mode 0600) and a rename.
fn write_private(path: &Path, data: &[u8]) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io("cannot create a temp file in", dir, e))?;
    tmp.write_all(data)
        .map_err(|e| Error::io("cannot write", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("cannot write", path, e.error))?;
    Ok(())
}
