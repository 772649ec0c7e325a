//! What a dataset publishes: its refs, and the set of commits reachable from them, among
//! which alone `?rev=` resolves.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::Repo;

/// The commits a dataset publishes: every commit reachable from its published refs, each
/// with its first parent. Only these resolve in `?rev=`: an object that is in the store but
/// not published (a refused push, a commit reset away, objects written there directly) is
/// never found, by id or by prefix.
pub struct Reach {
    /// The published refs' commits, sorted: what the set was computed from.
    pub(super) roots: Vec<ObjectId>,
    pub(super) main: Option<ObjectId>,
    pub(super) tags: Vec<(String, ObjectId)>,
    pub(super) first_parent: HashMap<ObjectId, Option<ObjectId>>,
}

/// A `main` and named commits (tags).
pub(super) type Refs = (Option<ObjectId>, Vec<(String, ObjectId)>);

/// The refs a dataset publishes: its `main` (see [`main_of`]) and tags, and those of the
/// signed head it publishes (for a mirror, the only ones).
pub(super) fn published_refs(repo: &Repo) -> Result<Refs> {
    let main = main_of(repo)?;
    let mut tags: Vec<(String, ObjectId)> = repo
        .refs("tags/")?
        .into_iter()
        .map(|(n, c)| (n.trim_start_matches("tags/").to_string(), c))
        .collect();
    let head = crate::ops::access::stored_head(repo)?;
    repo.release_db();
    let mut extra = Vec::new();
    if let Some(h) = head.filter(|h| !h.body.private) {
        for (n, c) in h.body.tags {
            if !tags.iter().any(|(t, _)| *t == n) {
                tags.push((n, ObjectId(c)));
            }
        }
        // The head's main, when the branch has moved past it, is published too.
        extra.extend(h.body.main.map(ObjectId).filter(|m| Some(*m) != main));
    }
    tags.sort();
    // Extra roots travel as unnamed tags: reachable, but not resolvable by name.
    tags.extend(extra.into_iter().map(|c| (String::new(), c)));
    Ok((main, tags))
}

/// Walks the history of `roots` (first parent of each commit). With the previous set `old`,
/// the walk stops at commits already known and keeps the old set when every old root is
/// still reached; otherwise it starts over. A commit that cannot be read is kept with no
/// parent (a request for it then fails on reading it).
pub(super) fn walk_commits(
    repo: &Repo,
    roots: &[ObjectId],
    old: Option<&Reach>,
) -> HashMap<ObjectId, Option<ObjectId>> {
    if let Some(old) = old {
        let mut out = HashMap::new();
        let mut hits = HashSet::new();
        walk_from(repo, roots, &old.first_parent, &mut out, &mut hits);
        if old.roots.iter().all(|r| hits.contains(r)) {
            let mut all = old.first_parent.clone();
            all.extend(out);
            return all;
        }
    }
    let mut out = HashMap::new();
    walk_from(repo, roots, &HashMap::new(), &mut out, &mut HashSet::new());
    out
}

fn walk_from(
    repo: &Repo,
    roots: &[ObjectId],
    known: &HashMap<ObjectId, Option<ObjectId>>,
    out: &mut HashMap<ObjectId, Option<ObjectId>>,
    hits: &mut HashSet<ObjectId>,
) {
    let mut stack: Vec<ObjectId> = roots.to_vec();
    while let Some(c) = stack.pop() {
        if known.contains_key(&c) {
            hits.insert(c);
            continue;
        }
        if out.contains_key(&c) {
            continue;
        }
        match repo.read_commit(&c) {
            Ok(commit) => {
                out.insert(c, commit.body.parents.first().copied());
                stack.extend(commit.body.parents);
            }
            Err(_) => {
                out.insert(c, None);
            }
        }
    }
}

/// Resolves `?rev=` among the published commits only: `main`, `HEAD` or `@` (the published
/// `main`), a published tag, or a commit id or unique prefix (4+ hex digits) of a published
/// commit, each optionally followed by `~N` or `^`. Nothing outside the set is read.
pub(super) fn resolve_published(reach: &Reach, rev: &str) -> Result<ObjectId> {
    let (base, back) = crate::ops::history::split_ancestry(rev)?;
    let unknown = || Error::UnknownRev(rev.to_string());
    let mut id = if ["HEAD", "@", "main"].contains(&base) {
        reach.main.ok_or(Error::NoCommits)?
    } else if let Some((_, c)) = reach.tags.iter().find(|(n, _)| !n.is_empty() && n == base) {
        *c
    } else if (4..=64).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = base.to_ascii_lowercase();
        let mut found = reach
            .first_parent
            .keys()
            .filter(|c| c.to_hex().starts_with(&prefix));
        match (found.next(), found.count()) {
            (Some(c), 0) => *c,
            (None, _) => return Err(unknown()),
            (Some(_), more) => {
                return Err(Error::AmbiguousRev {
                    rev: rev.to_string(),
                    count: more + 1,
                })
            }
        }
    } else {
        return Err(unknown());
    };
    for _ in 0..back {
        id = reach
            .first_parent
            .get(&id)
            .copied()
            .flatten()
            .ok_or(Error::RevTooFarBack {
                rev: rev.to_string(),
                n: back,
            })?;
    }
    Ok(id)
}

/// The commit a dataset's `main` names: the branch, or for a mirror (which has no branch
/// of its own) the `main` of the signed head it holds and serves.
pub(super) fn main_of(repo: &Repo) -> Result<Option<ObjectId>> {
    match repo.main()? {
        Some(c) => Ok(Some(c)),
        None => Ok(crate::ops::access::stored_head(repo)?
            .and_then(|h| h.body.main)
            .map(ObjectId)),
    }
}
