//! The gateway's HTML: the index and the dataset page, drawn from `page.rs`'s values with
//! one small inline stylesheet. No external asset and no script: the pages' policy
//! (`default-src 'none'; style-src 'unsafe-inline'`) would load neither. Every text from a
//! repository is escaped; the README arrives already sanitized (`markdown.rs`).

use super::markdown::escape;
use super::page::{rev_query, url_component, CommitView, DatasetView, IndexView};

/// The one stylesheet, inline.
const STYLE: &str = "\
:root{--fg:#1d232a;--muted:#5b6670;--line:#dfe3e8;--bg:#f6f8fa;--accent:#0b5cad}\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg)}\
main{max-width:1100px;margin:0 auto;padding:24px}\
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}\
h1{font-size:28px;margin:4px 0 8px}h2{font-size:17px;margin:0 0 8px}\
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}\
.crumbs{color:var(--muted);margin:0}\
.desc{font-size:16px;margin:0 0 12px;color:#333}\
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;margin:0 0 16px;padding:0}\
.facts div{margin:0}.facts dt{font-size:12px;color:var(--muted);text-transform:uppercase}\
.facts dd{margin:0;font-weight:600}\
.commit{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin-bottom:16px}\
.commit .msg{font-weight:600}.commit .meta{color:var(--muted);font-size:13px}\
.grid{display:grid;grid-template-columns:minmax(0,1fr) 320px;gap:20px}\
@media (max-width:800px){.grid{grid-template-columns:1fr}}\
table{border-collapse:collapse;width:100%}\
.files th{text-align:left;font-size:12px;color:var(--muted);border-bottom:1px solid var(--line);padding:6px 8px}\
.files td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top}\
.files td.size{white-space:nowrap;text-align:right}.files th.size{text-align:right}\
.files td.id code{font-size:11px;color:var(--muted);word-break:break-all}\
aside section,aside details{border:1px solid var(--line);border-radius:6px;padding:12px;margin-bottom:16px}\
aside pre{background:var(--bg);padding:8px;border-radius:4px;white-space:pre-wrap;word-break:break-all;margin:4px 0 10px;max-height:9em;overflow:auto}\
aside p{margin:0;font-size:13px;color:var(--muted)}\
summary{cursor:pointer;font-weight:600}\
details ul{list-style:none;padding:0;margin:4px 0 8px}details li{padding:2px 0;font-size:13px}\
details h3{font-size:12px;color:var(--muted);text-transform:uppercase;margin:8px 0 0}\
.readme{border:1px solid var(--line);border-radius:6px;padding:4px 20px 12px;margin-top:8px}\
.readme h2.name{font-size:13px;color:var(--muted);border-bottom:1px solid var(--line);padding:8px 0;margin:0 0 8px}\
.readme table td,.readme table th{border:1px solid var(--line);padding:4px 8px}\
.readme pre{background:var(--bg);padding:10px;overflow:auto}\
.bad{color:#b00020;font-weight:600}";

/// Bytes in binary units, as the command line prints them (`12.38 MiB`).
pub(super) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// A commit time as `2026-12-02 15:40 UTC` (times outside years 1970–9999 are clamped).
pub(super) fn date(t: i64) -> String {
    let t = t.clamp(0, 253_402_300_799);
    let (mut days, secs) = (t / 86_400, t % 86_400);
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 0;
    for (i, len) in [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        .iter()
        .enumerate()
    {
        let len = if i == 1 && leap(year) { 29 } else { *len };
        if days < len {
            month = i + 1;
            break;
        }
        days -= len;
    }
    format!(
        "{year:04}-{month:02}-{:02} {:02}:{:02} UTC",
        days + 1,
        secs / 3600,
        secs % 3600 / 60
    )
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n",
        escape(title)
    )
}

const FOOT: &str = "</main></body></html>\n";

/// The index page: every public dataset, linked by title.
pub(super) fn index(v: &IndexView) -> String {
    let mut out = head("lode datasets");
    out.push_str("<h1>Datasets</h1>\n<table class=\"files\">\n<tr><th>title</th><th>description</th><th>license</th><th>dataset id</th></tr>\n");
    for d in &v.datasets {
        out.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"id\"><code>{}</code></td></tr>\n",
            escape(&d.href),
            escape(d.title.as_deref().unwrap_or("(untitled)")),
            escape(d.description.as_deref().unwrap_or("")),
            escape(d.license.as_deref().unwrap_or("")),
            escape(&d.id),
        ));
    }
    out.push_str("</table>\n");
    out.push_str(FOOT);
    out
}

/// The dataset page of one directory.
pub(super) fn dataset(v: &DatasetView) -> String {
    let m = &v.metadata;
    let title = m.title.clone().unwrap_or_else(|| v.dataset.clone());
    let q = rev_query(v.rev.as_deref());
    let mut out = head(&format!("{title} /{}", v.path));

    // Where: datasets / title / each directory.
    let depth = v.path.split('/').filter(|p| !p.is_empty()).count();
    let mut crumbs = format!(
        "<p class=\"crumbs\"><a href=\"/\">datasets</a> / <a href=\"{}{q}\">{}</a>",
        if depth == 0 {
            "./".to_string()
        } else {
            "../".repeat(depth)
        },
        escape(&title)
    );
    let parts: Vec<&str> = v.path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, p) in parts.iter().enumerate() {
        let up = "../".repeat(parts.len() - i - 1);
        let href = if up.is_empty() { "./".to_string() } else { up };
        crumbs.push_str(&format!(" / <a href=\"{href}{q}\">{}</a>", escape(p)));
    }
    crumbs.push_str("</p>\n");
    out.push_str(&crumbs);
    out.push_str(&format!("<h1>{}</h1>\n", escape(&title)));
    if let Some(d) = &m.description {
        out.push_str(&format!("<p class=\"desc\">{}</p>\n", escape(d)));
    }

    // Facts: license, authors, keywords, size, id.
    let mut facts = String::new();
    let mut fact = |k: &str, v: String| {
        facts.push_str(&format!("<div><dt>{k}</dt><dd>{v}</dd></div>"));
    };
    fact(
        "License",
        escape(m.license.as_deref().unwrap_or("not stated")),
    );
    if !m.authors.is_empty() {
        fact("Authors", escape(&m.authors.join("; ")));
    }
    if !m.keywords.is_empty() {
        fact("Keywords", escape(&m.keywords.join(", ")));
    }
    fact(
        "Size",
        format!(
            "<span title=\"{} bytes\">{}</span> in {} entries",
            v.bytes,
            human(v.bytes),
            v.entries.len()
        ),
    );
    if let Some(c) = &v.copies {
        let mut s = match c.current {
            1 => "1 storage manager holds the current version".to_string(),
            n => format!("{n} storage managers hold the current version"),
        };
        if c.older > 0 {
            s.push_str(&format!(", {} an older one", c.older));
        }
        fact("Copies", s);
    }
    for (k, val) in &m.extra {
        fact(&escape(k), escape(val));
    }
    out.push_str(&format!("<dl class=\"facts\">{facts}</dl>\n"));

    // The commit shown.
    out.push_str(&format!(
        "<section class=\"commit\"><div class=\"msg\">{}</div><div class=\"meta\">{} · {} · <code>{}</code>{}</div></section>\n",
        escape(v.commit.message.lines().next().unwrap_or("")),
        author(&v.commit),
        date(v.commit.time),
        &v.commit.id[..12],
        if v.commit.signature_valid { "" } else { " · <span class=\"bad\">bad signature</span>" },
    ));

    out.push_str("<div class=\"grid\">\n<section>\n");
    out.push_str(&files(v, &q));
    out.push_str("</section>\n<aside>\n");
    out.push_str(&revisions(v));
    out.push_str(&get_box(v));
    out.push_str("</aside>\n</div>\n");

    if let Some(r) = &v.readme {
        out.push_str(&format!(
            "<article class=\"readme\"><h2 class=\"name\"><a href=\"{}\">{}</a></h2>\n{}</article>\n",
            escape(&r.href),
            escape(&r.name),
            r.html
        ));
    }
    out.push_str(FOOT);
    out
}

/// `Ana Lee <ana@lab.org> (604a738c)`, with the ORCID iD linked when there is one.
fn author(c: &CommitView) -> String {
    let mut s = escape(&c.author_label);
    if let Some(o) = c.person.as_ref().and_then(|p| p.orcid.as_ref()) {
        s.push_str(&format!(
            " <a href=\"https://orcid.org/{o}\">ORCID {o}</a>",
            o = escape(o)
        ));
    }
    s
}

fn files(v: &DatasetView, q: &str) -> String {
    let mut out = String::from(
        "<table class=\"files\">\n<tr><th>name</th><th class=\"size\">size</th><th>BLAKE3</th></tr>\n",
    );
    if !v.path.is_empty() {
        out.push_str(&format!(
            "<tr><td><a href=\"../{q}\">../</a></td><td></td><td></td></tr>\n"
        ));
    }
    for e in &v.entries {
        let shown = if e.kind == "dir" {
            format!("{}/", e.name)
        } else {
            e.name.clone()
        };
        out.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"size\" title=\"{} bytes\">{}</td><td class=\"id\">{}</td></tr>\n",
            escape(&e.href),
            escape(&shown),
            e.size,
            human(e.size),
            e.blake3
                .as_ref()
                .map(|b| format!("<code>{b}</code>"))
                .unwrap_or_default()
        ));
    }
    out.push_str("</table>\n");
    out
}

/// The revision picker: links to the tags and the recent commits of `main` (no form: the
/// page's policy allows none, and links need no script).
fn revisions(v: &DatasetView) -> String {
    let here = match &v.rev {
        Some(r) => escape(r),
        None => "main".into(),
    };
    let mut out = format!(
        "<details class=\"revs\"><summary>Revision: {here} <code>{}</code></summary>\n",
        &v.commit.id[..8]
    );
    let link = |rev: &str| format!("./?rev={}", url_component(rev));
    out.push_str("<ul><li><a href=\"./\">main</a> (latest)</li></ul>\n");
    if !v.tags.is_empty() {
        out.push_str("<h3>Tags</h3><ul>\n");
        for t in &v.tags {
            out.push_str(&format!(
                "<li><a href=\"{}\">{}</a> <code>{}</code></li>\n",
                escape(&link(&t.name)),
                escape(&t.name),
                &t.commit[..8]
            ));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h3>Recent commits</h3><ul>\n");
    for c in &v.recent {
        out.push_str(&format!(
            "<li><a href=\"{}\"><code>{}</code></a> {} <span class=\"crumbs\">{}</span></li>\n",
            escape(&link(&c.id)),
            &c.id[..8],
            escape(c.message.lines().next().unwrap_or("")),
            date(c.time),
        ));
    }
    out.push_str("</ul></details>\n");
    out
}

fn get_box(v: &DatasetView) -> String {
    let g = &v.get;
    let mut out = String::from("<section class=\"get\"><h2>Get this dataset</h2>\n");
    match &g.clone {
        Some(c) => out.push_str(&format!(
            "<p>With lode (the whole dataset, verified):</p><pre class=\"clone\">{}</pre>\n",
            escape(c)
        )),
        None => out.push_str("<p>The ticket appears here once the peer serves.</p>\n"),
    }
    if v.path.is_empty() {
        out.push_str(&format!(
            "<p>Its URI, to cite (any peer that saw the dataset resolves it):</p><pre class=\"uri\">{}</pre>\n",
            escape(&g.uri)
        ));
    } else {
        out.push_str(&format!(
            "<p>This folder, from any peer that has it:</p><pre class=\"uri\">lode get {}</pre>\n",
            escape(&g.uri)
        ));
    }
    out.push_str(&format!(
        "<p>One file over HTTP (check it with <code>b3sum</code>):</p><pre class=\"curl\">{}</pre>\n",
        escape(&g.curl)
    ));
    out.push_str(&format!(
        "<p>This listing as JSON: <a href=\"?format=json{}\">?format=json</a></p>\n",
        v.rev
            .as_deref()
            .map(|r| format!("&amp;rev={}", url_component(r)))
            .unwrap_or_default()
    ));
    out.push_str("</section>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dates() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.50 KiB");
        assert_eq!(human(12_980_000), "12.38 MiB");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(date(1_796_225_400), "2026-12-02 15:30 UTC");
        assert_eq!(date(-5), "1970-01-01 00:00 UTC");
        assert_eq!(date(i64::MAX), "9999-12-31 23:59 UTC");
    }
}
