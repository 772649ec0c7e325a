//! The command entry points `clone`, `fetch`, `pull`, and `receive` of a push.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use redb::ReadableTable;

use crate::config;
use crate::db::REFS;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::keys::Home;
use crate::net::endpoint::{peer_name, NetOptions};
use crate::ops::access;
use crate::ops::graph::Refs;
use crate::ops::sealed::{self, Manifest};
use crate::progress::Progress;
use crate::repo::{Repo, RepoOptions};
use crate::ticket::Ticket;
use crate::trust::{Bundle, SignedHead};

use super::client::*;
use super::remotes::*;
use super::share::*;
use super::store::*;
use super::walk::*;
use crate::ops::history::is_ancestor;

/// Receives a pushed commit: fetches what `repo` lacks of the closure of `new` from the
/// client's providers into `repo`'s store, checked like any fetch. Returns (objects, bytes).
pub async fn receive(
    client: &mut Client,
    repo: &Repo,
    new: ObjectId,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    let peer = client
        .providers
        .first()
        .map(|p| peer_name(p.as_bytes()))
        .unwrap_or_default();
    let dir = repo.root().join(".lode").join("push-in-store");
    let (objects, bytes, _) =
        fetch_into_repo(client, repo, &dir, Want::Plain(vec![new]), &peer, progress).await?;
    Ok((objects, bytes))
}

/// What a fetch brings into a repository.
pub enum Want {
    /// The plaintext closure of these commits.
    Plain(Vec<ObjectId>),
    /// A restricted dataset's sealed envelope and its ciphertexts; with `open`, also the
    /// plaintext (decrypted with this device's key, then checked like any fetched closure).
    Sealed { envelope: ObjectId, open: bool },
}

/// Walks what `want` names into `repo`'s object store through the transfer store at `dir`,
/// stopping at commits the local refs already hold whole. On success the transfer store is
/// deleted and the objects are flushed; on failure it stays, so that a retry resumes.
/// Returns (objects, bytes) received, and for an opened sealed head its manifest.
pub(super) async fn fetch_into_repo(
    client: &mut Client,
    repo: &Repo,
    dir: &Path,
    want: Want,
    peer: &str,
    progress: &dyn Progress,
) -> Result<(u64, u64, Option<Manifest>)> {
    let dataset = repo.dataset_id()?.to_bytes();
    let mut stop = HashSet::new();
    for prefix in ["heads/", "remotes/", "tags/"] {
        stop.extend(repo.refs(prefix)?.into_iter().map(|(_, id)| id));
    }
    let skip = crate::config::tainted(repo)?;
    let lazy = config::is_lazy(repo)?;
    if lazy && matches!(want, Want::Sealed { .. }) {
        return Err(super::lazy::restricted());
    }
    repo.release_db();
    let store = open_store(dir).await?;
    let mut walk = Walk::new(
        client,
        dir.to_path_buf(),
        &store,
        Sink::Repo(repo),
        progress,
    );
    walk.skip = skip;
    walk.lazy = lazy;
    let result = match want {
        Want::Plain(roots) => walk
            .run(roots, &stop, dataset, peer, None)
            .await
            .map(|_| None),
        Want::Sealed { envelope, open } => {
            fetch_sealed(&mut walk, repo, envelope, open, &stop, dataset, peer).await
        }
    };
    let counts = (walk.objects, walk.bytes);
    match result {
        Ok(manifest) => {
            close_store(store, dir).await;
            repo.store().sync()?;
            Ok((counts.0, counts.1, manifest))
        }
        Err(e) => {
            let _ = store.shutdown().await;
            Err(e)
        }
    }
}

/// Fetches a sealed envelope and every ciphertext it lists; with `open`, decrypts and checks
/// the plaintext closure.
pub(super) async fn fetch_sealed(
    walk: &mut Walk<'_>,
    repo: &Repo,
    envelope: ObjectId,
    open: bool,
    stop: &HashSet<ObjectId>,
    dataset: [u8; 32],
    peer: &str,
) -> Result<Option<Manifest>> {
    let lying = |msg: String| Error::LyingPeer {
        peer: peer.to_string(),
        msg,
    };
    walk.fetch_missing(&[(envelope, 0)]).await?;
    let env = sealed::read_envelope(repo, &envelope)
        .map_err(|e| lying(format!("its signed head names a bad envelope: {e}")))?;
    if env.dataset != dataset {
        return Err(lying("its envelope belongs to another dataset".into()));
    }
    if !open {
        walk.fetch_missing_as(&env.objects, Some("receiving"))
            .await?;
        return Ok(None);
    }
    // A reader fetches the keyring and manifest, then only the ciphertexts of the plaintext
    // it lacks, decrypts them and keeps the plaintext.
    let size = |id: &ObjectId| {
        env.objects
            .iter()
            .find(|(c, _)| c == id)
            .map_or(0, |(_, n)| *n)
    };
    walk.fetch_missing(&[
        (env.keyring, size(&env.keyring)),
        (env.manifest, size(&env.manifest)),
    ])
    .await?;
    let (manifest, ids) = sealed::read_manifest(repo, &env)?;
    let need = sealed::needed(repo, &env, &manifest);
    let keep = sealed::holds_ciphertext(repo)?;
    // A reader decrypts large ciphertexts while they stream in (verified chunk by chunk),
    // so nothing of them is written; if that fails, they go through the transfer store
    // (resumable, every provider) and are decrypted from there.
    let plain_of: HashMap<ObjectId, ObjectId> =
        manifest.map.iter().map(|(p, (c, _))| (*c, *p)).collect();
    let mut rest = Vec::new();
    for (cipher, size) in need {
        let streamed = match plain_of.get(&cipher) {
            Some(plain) if size > SMALL_BLOB && !keep => walk
                .stream_decrypt(repo, cipher, *plain, &ids, env.padded)
                .await
                .is_ok(),
            _ => false,
        };
        if !streamed {
            rest.push((cipher, size));
        }
    }
    walk.fetch_missing(&rest).await?;
    sealed::decrypt_missing(repo, &manifest, &ids, keep, env.padded)?;
    let roots: Vec<ObjectId> = manifest
        .main
        .iter()
        .copied()
        .chain(manifest.tags.iter().map(|(_, id)| *id))
        .collect();
    // Everything is local now: this checks the decrypted commits and trees (signatures,
    // names, symlinks) exactly as for a plaintext fetch, without fetching.
    walk.run(roots, stop, dataset, peer, None).await?;
    Ok(Some(manifest))
}

/// Fetches the dataset of `remote` into `repo` and moves `remotes/NAME/main`; new tags are
/// created locally (existing ones are left alone).
pub async fn fetch(
    repo: &Repo,
    remote_name: &str,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    let (report, seeder) = fetch_seeding(repo, remote_name, cap, opts, progress).await?;
    Ok(Seeder::finish_into(seeder, report, progress).await)
}

/// [`fetch`], returning the swarm session (if the download took part in one) still serving.
async fn fetch_seeding(
    repo: &Repo,
    remote_name: &str,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<(FetchReport, Option<Seeder>)> {
    let ticket = remote(repo, remote_name)?;
    fetch_ticket(repo, remote_name, &ticket, cap, opts, progress).await
}

pub(super) async fn fetch_ticket(
    repo: &Repo,
    remote_name: &str,
    ticket: &Ticket,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<(FetchReport, Option<Seeder>)> {
    let start = Instant::now();
    let dataset = repo.dataset_id()?.to_bytes();
    if ticket.dataset != dataset {
        return Err(Error::Other(format!(
            "the ticket is for dataset {}, this repository holds dataset {}",
            hex::encode(ticket.dataset),
            hex::encode(dataset)
        )));
    }
    if let Some(c) = &cap {
        use_capability(repo, c)?;
    }
    let _lock = repo.lock()?;
    let cap = match cap {
        Some(c) => Some(c),
        None => access::own_capability(repo)?,
    };
    let mirror = config::is_mirror(repo)?;
    // No database is held while the network is waited on: a peer that does not answer
    // costs its timeout, and `lode serve` (which may be this process, serving a mirror)
    // must be able to read the repository meanwhile.
    repo.release_db();
    let mut client = Client::new(repo.home(), ticket, cap, opts).await?;
    let fetched = fetch_with(
        &mut client,
        repo,
        remote_name,
        mirror,
        opts,
        progress,
        start,
    )
    .await;
    // On success, the swarm session goes on serving: the seeder closes the endpoint when it
    // is done.
    let seeder = match &fetched {
        Ok(_) => Seeder::take(&mut client, opts),
        Err(_) => None,
    };
    client.close().await;
    let report = fetched?;
    crate::net::uri::remember(repo.home(), ticket);
    Ok((report, seeder))
}

/// The body of [`fetch_ticket`], with its client: lists the refs, downloads what they reach
/// and records them.
async fn fetch_with(
    client: &mut Client,
    repo: &Repo,
    remote_name: &str,
    mirror: bool,
    opts: &NetOptions,
    progress: &dyn Progress,
    start: Instant,
) -> Result<FetchReport> {
    let published = client.list_refs().await?;
    check_not_older(repo, &published)?;
    let peer = published.peer.clone();
    // A public dataset's download takes part in its swarm (restricted ones never do: see
    // docs/SECURITY.md). A mirror's follow round too (`lode serve --mirrors --follow`
    // asks for it), which then serves nothing itself: its `lode serve` holds the mirror's
    // serve lock and serves what the round completed.
    join_repo_swarm(
        client,
        repo,
        published.head.body.private,
        &opts.share,
        !mirror,
    )
    .await?;
    let dir = fetch_store_dir(repo);
    let want = match (published.head.body.private, published.refs.head) {
        (true, Some(envelope)) => Want::Sealed {
            envelope,
            open: !mirror,
        },
        (true, None) => Want::Plain(vec![]),
        (false, _) => Want::Plain(published.refs.roots()),
    };
    let (objects, bytes, manifest) =
        fetch_into_repo(client, repo, &dir, want, &peer, progress).await?;
    // The refs to record: the plaintext ones (from the manifest of a restricted dataset); a
    // mirror of a restricted dataset has none, only the head it serves on.
    let refs = match manifest {
        Some(m) => Refs {
            head: m.main,
            tags: m.tags,
        },
        None if published.head.body.private => Refs::default(),
        None => published.refs.clone(),
    };
    {
        let db = repo.db()?;
        let tx = db.db.begin_write()?;
        {
            let mut t = tx.open_table(REFS)?;
            if let Some(h) = refs.head {
                t.insert(
                    format!("remotes/{remote_name}/main").as_str(),
                    h.to_hex().as_str(),
                )?;
            }
            for (name, id) in &refs.tags {
                let key = format!("tags/{name}");
                if t.get(key.as_str())?.is_none() {
                    t.insert(key.as_str(), id.to_hex().as_str())?;
                }
            }
        }
        tx.commit()?;
    }
    access::store_revocations(repo, &published.revocations)?;
    access::store_head(repo, &published.head)?;
    if published.head.body.private && !config::is_private(repo)? {
        config::put_private(repo, true)?;
    }
    Ok(client.report(refs.head, objects, bytes, start))
}

/// Refuses a head older than the newest this repository has seen (a stale or rolling-back
/// provider), and a different head with the same sequence number (a fork).
pub(super) fn check_not_older(repo: &Repo, published: &Published) -> Result<()> {
    // The head's writer must not be revoked by what this repository already knows either.
    let mut known = access::revocations(repo)?;
    known.extend(published.revocations.iter().cloned());
    let revoked = access::revoked_set(&known);
    let dataset = repo.dataset_id()?.to_bytes();
    SignedHead::decode(
        &published.head.encode(),
        &dataset,
        &revoked,
        Some(access::now()),
    )
    .map_err(|e| Error::LyingPeer {
        peer: published.peer.clone(),
        msg: format!("serves a head that does not verify: {e}"),
    })?;
    let Some(stored) = access::stored_head(repo)? else {
        return Ok(());
    };
    let (got, have) = (published.head.body.seq, stored.body.seq);
    if got < have {
        return Err(Error::Rollback {
            peer: published.peer.clone(),
            got,
            have,
        });
    }
    if got == have && published.head.encode() != stored.encode() {
        return Err(Error::LyingPeer {
            peer: published.peer.clone(),
            msg: format!("serves a different head with the same sequence number {got} (a writer's key may be compromised)"),
        });
    }
    Ok(())
}

/// How to clone.
#[derive(Default)]
pub struct CloneOptions {
    /// The capability ticket to present (and keep).
    pub cap: Option<Bundle>,
    /// Keep what the dataset publishes without decrypting or checking out (a mirror).
    pub mirror: bool,
    /// Check out (now and later) by hard-linking files from the object store.
    pub link: bool,
    /// Commits and trees only: file content comes later, with `lode get PATH` (a lazy clone).
    pub lazy: bool,
}

/// Clones the dataset of `ticket` into `dir` (resuming an interrupted clone of the same
/// dataset there) and checks out its `main` commit.
pub async fn clone(
    dir: &Path,
    home: Home,
    repo_opts: RepoOptions,
    ticket: &Ticket,
    how: CloneOptions,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<(Repo, FetchReport)> {
    let CloneOptions {
        cap,
        mirror,
        link,
        lazy,
    } = how;
    let existed = dir.exists();
    let resumable = dir.join(".lode").is_dir();
    // Like git: a clone goes into a new or empty directory, never over a user's files (what a
    // killed clone or init of lode left there does not count).
    if existed && !resumable {
        let mut theirs: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("cannot read", dir, e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !matches!(
                    crate::leftover::parse(n),
                    Some((crate::leftover::Kind::Init, _))
                )
            })
            .collect();
        if !theirs.is_empty() {
            theirs.sort();
            return Err(Error::NotEmpty {
                dir: dir.to_path_buf(),
                entries: theirs.len(),
                first: theirs.swap_remove(0),
            });
        }
    }
    // A clone of the same dataset already there is resumed: one killed before its checkout
    // finished (no commit yet), or one killed after (a clone of this dataset's `origin`):
    // that is completed like a pull, if its `main` has not moved away from the remote's.
    let mut done_before = false;
    let repo = if resumable {
        let repo = Repo::discover(dir, home, repo_opts)?;
        if repo.dataset_id()?.to_bytes() != ticket.dataset {
            return Err(Error::AlreadyRepo(repo.root().to_path_buf()));
        }
        if repo.head()?.commit.is_some() {
            if repo.head()?.branch.is_none() || remote(&repo, "origin").is_err() {
                return Err(Error::AlreadyRepo(repo.root().to_path_buf()));
            }
            done_before = true;
        }
        repo
    } else {
        Repo::init_clone(dir, home, repo_opts, ticket.dataset)?
    };
    set_remote(&repo, "origin", ticket)?;
    if mirror {
        config::set_mirror(&repo)?;
    }
    if link {
        config::set_checkout_links(&repo)?;
    }
    if lazy {
        config::set_lazy(&repo)?;
    }
    let (report, seeder) = match fetch_ticket(&repo, "origin", ticket, cap, opts, progress).await {
        Ok(r) => r,
        Err(e) => {
            // Nothing received: leave no half-made clone behind. Once data arrived, keep it
            // so that running the clone again resumes.
            let partial = std::fs::read_dir(partial_dir(&repo))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            // A peer that lied or refused: nothing of it is worth resuming.
            let refused = matches!(
                e,
                Error::LyingPeer { .. }
                    | Error::NotAuthorized { .. }
                    | Error::Trust(_)
                    | Error::Rollback { .. }
            );
            if refused
                || (!fetch_store_dir(&repo).exists()
                    && !swarm_store_dir(&repo).exists()
                    && !partial)
            {
                if !existed {
                    let _ = std::fs::remove_dir_all(dir);
                } else if !resumable {
                    // The directory was the user's (empty): remove only what this clone made.
                    let _ = std::fs::remove_dir_all(dir.join(".lode"));
                }
            }
            return Err(e);
        }
    };
    if let (Some(head), false) = (&report.head, mirror) {
        let id: ObjectId = head
            .parse()
            .map_err(|_| Error::Other("bad head id".into()))?;
        match repo.main()? {
            // Checked out before the kill: nothing is left to do.
            Some(local) if done_before && local == id => {}
            Some(local) if done_before && !is_ancestor(&repo, &local, &id)? => {
                return Err(Error::AlreadyRepo(repo.root().to_path_buf()));
            }
            _ => {
                crate::ops::checkout::fast_forward(&repo, id, progress)?;
            }
        }
    }
    // Others may still be fetching from this clone: it seeds before it returns.
    let report = Seeder::finish_into(seeder, report, progress).await;
    Ok((repo, report))
}

/// Fetches from `remote`, then fast-forwards `main` and the working tree to the remote's
/// `main` (refusing to overwrite uncommitted changes, and refusing when histories diverged).
pub async fn pull(
    repo: &Repo,
    remote_name: &str,
    cap: Option<Bundle>,
    opts: &NetOptions,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    // Chunked files the fetch assembles go straight into the working tree.
    let prepared = repo.store().prepare_for_checkout();
    let (report, seeder) = fetch_seeding(repo, remote_name, cap, opts, progress).await?;
    let moved = fast_forward_to_remote(repo, &report, progress);
    drop(prepared);
    // Others may still be fetching from this peer: it seeds before it returns, even when
    // the working tree could not be updated (the objects are in).
    let report = Seeder::finish_into(seeder, report, progress).await;
    moved.map(|()| report)
}

/// Fast-forwards `main` and the working tree to the remote head a fetch reported.
fn fast_forward_to_remote(
    repo: &Repo,
    report: &FetchReport,
    progress: &dyn Progress,
) -> Result<()> {
    let Some(remote_head) = report
        .head
        .as_ref()
        .and_then(|h| h.parse::<ObjectId>().ok())
    else {
        return Ok(());
    };
    let local = repo.main()?;
    if let Some(local) = local {
        if local == remote_head || is_ancestor(repo, &remote_head, &local)? {
            return Ok(());
        }
        if !is_ancestor(repo, &local, &remote_head)? {
            return Err(Error::Diverged {
                what: "main".into(),
                local: local.short(),
                remote: remote_head.short(),
            });
        }
    }
    crate::ops::checkout::fast_forward(repo, remote_head, progress).map(|_| ())
}
