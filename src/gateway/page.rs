//! What the gateway's pages show, gathered from a repository: the index of datasets, and a
//! dataset page (a directory of a published commit with the dataset's metadata, its last
//! commit, tags and recent commits, how to get it, and the directory's README). The same
//! values are the JSON form of each page (`?format=json`); `html.rs` draws them.

use serde::Serialize;

use super::reach::{main_of, published_refs};
use super::state::Gateway;
use crate::error::Result;
use crate::id::ObjectId;
use crate::object::{Commit, EntryKind, Metadata, TreeEntry};
use crate::person::Person;
use crate::repo::Repo;

/// Recent commits offered by the revision picker.
const RECENT: usize = 10;
/// Largest README rendered (a bigger one is linked, not shown).
const MAX_README: u64 = 1 << 20;
/// README names, in the order they are looked for (case-insensitively).
const README_NAMES: &[&str] = &["readme.md", "readme.markdown", "readme", "readme.txt"];

/// The index: every public dataset served.
#[derive(Serialize)]
pub(super) struct IndexView {
    pub datasets: Vec<IndexRow>,
}

#[derive(Serialize)]
pub(super) struct IndexRow {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub href: String,
}

/// Where a dataset page is: which dataset, directory and commit, as asked.
pub(super) struct At<'a> {
    pub dataset: &'a str,
    /// The directory, without leading or trailing `/` (empty at the top).
    pub path: &'a str,
    pub commit: ObjectId,
    /// The `?rev=` asked for, if any.
    pub rev: Option<&'a str>,
    /// The request's `Host`, for the `curl` line.
    pub host: Option<&'a str>,
}

/// A directory of a dataset at a published commit.
#[derive(Serialize)]
pub(super) struct DatasetView {
    pub dataset: String,
    pub path: String,
    pub rev: Option<String>,
    pub commit: CommitView,
    pub metadata: Metadata,
    /// Named published commits, by name.
    pub tags: Vec<TagView>,
    /// The newest commits of the published `main`, newest first.
    pub recent: Vec<CommitView>,
    pub get: GetView,
    /// Total bytes of the entries listed (files, link targets, and all below directories).
    pub bytes: u64,
    pub entries: Vec<EntryView>,
    pub readme: Option<ReadmeView>,
    /// How many storage managers hold the dataset, when a registry this user knows said
    /// (signed claims, see docs/SECURITY.md).
    pub copies: Option<super::state::CopiesView>,
}

#[derive(Serialize)]
pub(super) struct CommitView {
    pub id: String,
    pub message: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// The author's device key, hex.
    pub author: String,
    /// Who the author claims to be (signed with the commit; a claim, not a proof).
    pub person: Option<Person>,
    /// `Ana Lee <ana@lab.org> (604a738c)`, or the key.
    pub author_label: String,
    pub signature_valid: bool,
}

impl CommitView {
    fn new(id: ObjectId, c: &Commit) -> CommitView {
        CommitView {
            id: id.to_hex(),
            message: c.body.message.clone(),
            time: c.body.time,
            author: hex::encode(c.body.author),
            person: c.body.person.clone(),
            author_label: crate::person::who(c.body.person.as_ref(), &c.body.author),
            signature_valid: c.verify().is_ok(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct TagView {
    pub name: String,
    pub commit: String,
}

/// How to get this dataset (or directory).
#[derive(Serialize)]
pub(super) struct GetView {
    /// The serving peer's ticket, once serving started.
    pub ticket: Option<String>,
    /// `lode clone TICKET`, when there is a ticket.
    pub clone: Option<String>,
    /// `lode://DATASET[/PATH][?rev=REV]`.
    pub uri: String,
    /// A `curl` line that downloads the first file listed (or lists the directory).
    pub curl: String,
}

#[derive(Serialize)]
pub(super) struct EntryView {
    pub name: String,
    /// `file`, `exec`, `dir` or `symlink`.
    pub kind: &'static str,
    pub size: u64,
    /// The BLAKE3 id of a file's bytes (`b3sum`), or of a link's target; none for a
    /// directory.
    pub blake3: Option<String>,
    /// The link, relative to this directory's page.
    pub href: String,
}

#[derive(Serialize)]
pub(super) struct ReadmeView {
    pub name: String,
    pub href: String,
    /// The README as sanitized HTML (not part of the JSON form; `href` has the file).
    #[serde(skip)]
    pub html: String,
}

/// The index of the public datasets served.
pub(super) fn index(gw: &Gateway) -> IndexView {
    let mut datasets = Vec::new();
    for (id, repo) in &gw.repos {
        if gw.public(id).is_none() {
            continue;
        }
        let meta = main_of(repo)
            .ok()
            .flatten()
            .and_then(|c| repo.read_commit(&c).ok())
            .map(|c| c.body.metadata)
            .unwrap_or_default();
        repo.release_db();
        datasets.push(IndexRow {
            id: id.clone(),
            title: meta.title,
            description: meta.description,
            license: meta.license,
            href: format!("/d/{id}/"),
        });
    }
    IndexView { datasets }
}

/// The query that keeps a page's revision in its links (`?rev=…`, or nothing).
pub(super) fn rev_query(rev: Option<&str>) -> String {
    rev.map(|r| format!("?rev={}", url_component(r)))
        .unwrap_or_default()
}

/// Percent-encodes one path component for a link.
pub(super) fn url_component(s: &str) -> String {
    crate::text::url_encode(s)
}

/// A dataset page: directory `at.path` of commit `at.commit`, whose entries are `entries`.
pub(super) fn dataset(
    gw: &Gateway,
    repo: &Repo,
    at: &At<'_>,
    entries: Vec<TreeEntry>,
) -> Result<DatasetView> {
    let commit = repo.read_commit(&at.commit)?;
    let q = rev_query(at.rev);
    let (main, tags) = published_refs(repo)?;
    let tags = tags
        .into_iter()
        .filter(|(n, _)| !n.is_empty())
        .map(|(name, c)| TagView {
            name,
            commit: c.to_hex(),
        })
        .collect();
    let mut recent = Vec::new();
    let mut next = main;
    while let Some(id) = next.filter(|_| recent.len() < RECENT) {
        let Ok(c) = repo.read_commit(&id) else { break };
        next = c.body.parents.first().copied();
        recent.push(CommitView::new(id, &c));
    }
    let readme = readme(repo, &entries, &q);
    let entries: Vec<EntryView> = entries
        .into_iter()
        .map(|e| {
            let dir = e.kind == EntryKind::Dir;
            EntryView {
                href: format!(
                    "{}{}{q}",
                    url_component(&e.name),
                    if dir { "/" } else { "" }
                ),
                blake3: (!dir).then(|| e.id.to_hex()),
                kind: e.kind.as_str(),
                size: e.size,
                name: e.name,
            }
        })
        .collect();
    let bytes = entries.iter().map(|e| e.size).sum();
    let ticket = gw.ticket(at.dataset);
    let sub = if at.path.is_empty() {
        String::new()
    } else {
        format!("/{}", at.path)
    };
    let page_url = format!(
        "{}/d/{}{}/",
        base_url(at.host),
        at.dataset,
        at.path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| format!("/{}", url_component(p)))
            .collect::<String>()
    );
    let curl = match entries.iter().find(|e| e.kind != "dir") {
        Some(f) => format!("curl -O '{page_url}{}'", f.href),
        None => format!("curl '{page_url}?format=json'"),
    };
    Ok(DatasetView {
        dataset: at.dataset.to_string(),
        path: at.path.to_string(),
        rev: at.rev.map(str::to_string),
        commit: CommitView::new(at.commit, &commit),
        metadata: commit.body.metadata,
        tags,
        recent,
        get: GetView {
            clone: ticket.as_ref().map(|t| format!("lode clone {t}")),
            ticket,
            uri: format!("lode://{}{sub}{q}", at.dataset),
            curl,
        },
        bytes,
        entries,
        readme,
        copies: gw.copies_of(at.dataset, main),
    })
}

/// `http://HOST` from the request's `Host` header when it is a plain host name or address
/// (anything else could break out of the quoted `curl` line), else a placeholder.
fn base_url(host: Option<&str>) -> String {
    let plain = |h: &str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    match host.filter(|h| plain(h)) {
        Some(h) => format!("http://{h}"),
        None => "http://GATEWAY".into(),
    }
}

/// The directory's README, rendered: Markdown for `.md`/`.markdown`, else preformatted
/// text. `None` when there is none, or it is too big or unreadable (it stays in the list).
fn readme(repo: &Repo, entries: &[TreeEntry], q: &str) -> Option<ReadmeView> {
    let e = README_NAMES.iter().find_map(|want| {
        entries
            .iter()
            .find(|e| e.kind == EntryKind::File && e.name.to_ascii_lowercase() == *want)
    })?;
    if e.size > MAX_README {
        return None;
    }
    let bytes = repo.store().read_verified(&e.id, MAX_README).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lower = e.name.to_ascii_lowercase();
    let html = if lower.ends_with(".md") || lower.ends_with(".markdown") {
        super::markdown::render(&text)
    } else {
        format!("<pre>{}</pre>", super::markdown::escape(&text))
    };
    Some(ReadmeView {
        name: e.name.clone(),
        href: format!("{}{q}", url_component(&e.name)),
        html,
    })
}
