//! Output: the `Ui` (stdout data, stderr messages, text or JSON) and the formatting helpers
//! every command shares (escaping, sizes, times, changes, metadata, transfer reports).

use std::io::{self, Write};

use lode::ops::{self, status::Change};
use serde::Serialize;

use super::progress::Bar;

/// Output: data on stdout, messages on stderr, as text or JSON.
pub(crate) struct Ui {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) progress: bool,
    pub(crate) out: io::StdoutLock<'static>,
}

impl Ui {
    /// Writes one line of text output, its control characters escaped (see [`escape`]).
    pub(crate) fn line(&mut self, s: impl AsRef<str>) -> io::Result<()> {
        writeln!(self.out, "{}", escape(s.as_ref()))
    }
    pub(crate) fn json<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.out, v).map_err(io::Error::other)?;
        writeln!(self.out)
    }
    #[allow(clippy::print_stderr)]
    pub(crate) fn note(&self, s: impl AsRef<str>) {
        if !self.quiet && !self.json {
            eprintln!("{}", escape(s.as_ref()));
        }
    }
    /// A command's report: with `--json` the report itself on stdout, else its one-line
    /// `summary` on stderr (a note, which `-q` silences).
    pub(crate) fn report<T: Serialize>(
        &mut self,
        r: &T,
        summary: impl FnOnce(&T) -> String,
    ) -> io::Result<()> {
        if self.json {
            return self.json(r);
        }
        self.note(summary(r));
        Ok(())
    }
    pub(crate) fn bar(&self, label: &str) -> Bar {
        Bar::new(label, self.progress)
    }
}

/// Escapes what a terminal would act on: every control character (C0 including newline
/// and carriage return, DEL, C1 such as the 8-bit CSI) and the bidirectional overrides that
/// reorder what is shown, each as `\u{..}` (`\n`, `\r` for those two). Tabs pass. Every
/// line of human-readable output goes through it (`Ui::line`, `Ui::note`, the error line,
/// the mirror reports): commit messages, titles, authors, names, notices and error texts come
/// from peers, and an `ESC[2J` or OSC sequence in them must not reach the terminal. JSON
/// output does not (serde escapes control characters itself).
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    };
    if !s.contains(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if bad(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Quotes a path for text output when it holds control characters or quotes.
pub(crate) fn qp(p: &str) -> String {
    if p.chars().any(|c| c.is_control() || c == '"') {
        format!("{p:?}")
    } else {
        p.to_string()
    }
}

pub(crate) fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

pub(crate) fn fmt_time(t: i64) -> String {
    // Seconds since the epoch to a UTC date, without a time-zone database.
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub(crate) fn print_transfer(
    ui: &mut Ui,
    verb: &str,
    r: &lode::net::fetch::FetchReport,
) -> io::Result<()> {
    if ui.json {
        return ui.json(r);
    }
    ui.note(format!(
        "{verb} {} objects, {} in {:.2}s from {}",
        r.objects,
        human(r.bytes),
        r.seconds,
        r.peers.join(", ")
    ));
    print_swarm(ui, r.swarm.as_ref());
    Ok(())
}

/// Notes what a download's swarm session moved (text output).
pub(crate) fn print_swarm(ui: &Ui, swarm: Option<&lode::net::swarm::SwarmReport>) {
    if let Some(s) = swarm {
        let sum = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
        ui.note(format!(
            "swarm: received {} from {} peers, sent {} to {} peers, seeded {:.1}s",
            human(sum(&s.received_from)),
            s.received_from.len(),
            human(sum(&s.sent_to)),
            s.sent_to.len(),
            s.seeded_seconds
        ));
        for d in &s.dropped {
            ui.note(format!("swarm: {d}"));
        }
    }
}

pub(crate) fn print_changes(ui: &mut Ui, changes: &[Change]) -> io::Result<()> {
    use lode::ops::status::ChangeKind::*;
    for c in changes {
        let (tag, size) = match c.change {
            Added => ("added:   ", human(c.new_size.unwrap_or(0))),
            Deleted => ("deleted: ", human(c.old_size.unwrap_or(0))),
            Modified => (
                "modified:",
                format!(
                    "{} -> {}",
                    human(c.old_size.unwrap_or(0)),
                    human(c.new_size.unwrap_or(0))
                ),
            ),
        };
        ui.line(format!("{tag} {} ({size})", qp(&c.path)))?;
    }
    Ok(())
}

pub(crate) fn print_change_list(ui: &mut Ui, changes: &[Change]) -> io::Result<()> {
    for c in changes {
        let tag = format!("{:?}:", c.change).to_lowercase();
        ui.line(format!("  {tag:<9} {}", qp(&c.path)))?;
    }
    Ok(())
}

pub(crate) fn print_status(ui: &mut Ui, s: &ops::status::StatusReport) -> io::Result<()> {
    match (&s.branch, &s.head) {
        (Some(b), _) => ui.line(format!("On branch {b}"))?,
        (None, Some(h)) => ui.line(format!("HEAD detached at {}", &h[..12]))?,
        _ => {}
    }
    if s.head.is_none() {
        ui.line("No commits yet")?;
    }
    if !s.staged.is_empty() || s.metadata_changed {
        ui.line("")?;
        ui.line("Changes to be committed:")?;
        if s.metadata_changed {
            ui.line("  metadata changed (lode meta)")?;
        }
        print_change_list(ui, &s.staged)?;
    }
    if !s.unstaged.is_empty() {
        ui.line("")?;
        ui.line("Changes not staged for commit (use `lode add`):")?;
        print_change_list(ui, &s.unstaged)?;
    }
    if !s.untracked.is_empty() {
        ui.line("")?;
        ui.line("Untracked files (use `lode add`):")?;
        for p in &s.untracked {
            ui.line(format!("  {}", qp(p)))?;
        }
    }
    if !s.leftovers.is_empty() {
        ui.line("\nTemp files of an interrupted lode (removed by `lode gc`):")?;
        for p in &s.leftovers {
            ui.line(format!("  {}", qp(p)))?;
        }
    }
    if !s.absent.is_empty() {
        ui.line(format!(
            "\n{} file(s) absent in this lazy clone (fetch with `lode get PATH`):",
            s.absent.len()
        ))?;
        for p in s.absent.iter().take(20) {
            ui.line(format!("  {}", qp(p)))?;
        }
        if s.absent.len() > 20 {
            ui.line(format!("  … and {} more", s.absent.len() - 20))?;
        }
    }
    if s.is_clean() && s.untracked.is_empty() && s.leftovers.is_empty() {
        ui.line("nothing to commit, working tree clean")?;
    }
    Ok(())
}

pub(crate) fn print_meta(ui: &mut Ui, m: &lode::object::Metadata) -> io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    ui.line(format!("title:       {}", opt(&m.title)))?;
    ui.line(format!("description: {}", opt(&m.description)))?;
    ui.line(format!("license:     {}", opt(&m.license)))?;
    ui.line(format!("authors:     {}", m.authors.join("; ")))?;
    ui.line(format!("keywords:    {}", m.keywords.join(", ")))?;
    for (k, v) in &m.extra {
        ui.line(format!("{k}: {v}"))?;
    }
    Ok(())
}

/// Reports one round of mirror following on stderr: taint notices obeyed or ignored, what
/// was fetched, what was dropped over quota, what failed (errors even when `quiet`).
#[allow(clippy::print_stderr)]
pub(crate) fn report_round(round: &lode::net::mirror::Round, quiet: bool) {
    // Notice reasons and peers' errors are written by others: escaped like all output.
    let say = |s: String| eprintln!("{}", escape(&s));
    for n in &round.notices {
        let short = &n.notice[..12.min(n.notice.len())];
        if n.obeyed {
            say(format!(
                "taint notice {short} ({}: {}): {}",
                n.target, n.reason, n.action
            ));
        } else {
            say(format!("taint notice {short}: {}", n.action));
        }
    }
    for (id, r) in &round.mirrors {
        let id = &id[..12.min(id.len())];
        match r {
            Ok(f) => {
                if f.fetched.objects > 0 && !quiet {
                    say(format!(
                        "mirror {id}: fetched {} objects, {}",
                        f.fetched.objects,
                        human(f.fetched.bytes)
                    ));
                }
                // Through the dataset's swarm: what came from each peer (the origin, other
                // mirrors, downloaders).
                let from = f.fetched.swarm.as_ref().map(|s| &s.received_from);
                if let (Some(from), false) = (from.filter(|m| !m.is_empty()), quiet) {
                    let list: Vec<String> = from
                        .iter()
                        .map(|(peer, n)| format!("{} from {peer}", human(*n)))
                        .collect();
                    say(format!("mirror {id}: swarm: received {}", list.join(", ")));
                }
                for d in &f.dropped {
                    say(format!(
                        "mirror {id}: over quota, dropped {} ({}; last used by commit {})",
                        &d.id[..12],
                        human(d.bytes),
                        &d.last_used_by[..12]
                    ));
                }
            }
            Err(e) => say(format!("mirror {id}: {e}")),
        }
    }
    for a in &round.adopted {
        let id = &a.dataset[..12.min(a.dataset.len())];
        match &a.result {
            Ok(()) => say(format!(
                "adopted {} ({id}, {}): it falls within what this storage manager volunteered for",
                a.name,
                human(a.bytes)
            )),
            Err(e) if a.dataset.is_empty() => say(format!("volunteering: {e}")),
            Err(e) => say(format!("could not adopt {} ({id}): {e}", a.name)),
        }
    }
}

/// One issued ticket, as `grant --json` and `grants` show it.
#[derive(Serialize)]
pub(crate) struct GrantJson {
    pub(crate) id: String,
    pub(crate) holder: String,
    /// Who the holder's identity card said they are (a claim), when the grant was made to
    /// a card that names a person.
    pub(crate) holder_person: Option<lode::person::Person>,
    pub(crate) rights: String,
    pub(crate) scope: Vec<String>,
    pub(crate) not_before: u64,
    pub(crate) expires: u64,
    pub(crate) delegable: u8,
    pub(crate) note: String,
    pub(crate) ticket: String,
    pub(crate) status: String,
}

pub(crate) fn grant_json(b: &lode::trust::Bundle) -> GrantJson {
    let leaf = &b.leaf().body;
    GrantJson {
        id: hex::encode(b.leaf().id()),
        holder: hex::encode(leaf.audience),
        holder_person: None,
        rights: leaf.rights.names(),
        scope: leaf.scope.clone(),
        not_before: leaf.not_before,
        expires: leaf.expires,
        delegable: leaf.max_depth,
        note: leaf.note.clone(),
        ticket: b.to_string(),
        status: "valid".into(),
    }
}
