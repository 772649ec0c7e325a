//! A download's part in its dataset's swarm: joining it (`join_swarm`), and the session
//! serving on after the download (`Seeder`), shared by `clone`/`fetch`/`pull` and `get`.

use crate::error::{Error, Result};
use crate::keys::Home;
use crate::net::endpoint::NetOptions;
use crate::progress::Progress;
use crate::repo::Repo;
use crate::trust::Bundle;

use super::client::{Client, FetchReport};

/// A download's swarm session after the download: it goes on serving the other peers until
/// [`Seeder::finish`] (which seeds as `--seed` says, or while others still fetch from it).
pub struct Seeder {
    session: crate::net::swarm::session::Session,
    net: crate::net::endpoint::Net,
    /// The endpoint was bound for this download: closed at the end.
    owned: bool,
    seed: Option<std::time::Duration>,
}

impl Seeder {
    /// Takes the swarm session of `client` (after its download succeeded), and the duty of
    /// closing its endpoint, so that it serves on once the client is closed.
    pub(super) fn take(client: &mut Client, opts: &NetOptions) -> Option<Seeder> {
        let session = client.swarm.take()?;
        Some(Seeder {
            session,
            net: client.net.clone(),
            owned: std::mem::take(&mut client.owned),
            seed: opts.share.seed,
        })
    }

    /// Seeds, stops, and returns what moved to and from each peer.
    pub async fn finish(self, progress: &dyn Progress) -> crate::net::swarm::session::SwarmReport {
        let report = self.session.finish(self.seed, progress).await;
        if self.owned {
            self.net.endpoint.close().await;
        }
        report
    }

    /// Finishes `seeder` (if any) and adds its report to `report`.
    pub async fn finish_into(
        seeder: Option<Seeder>,
        mut report: FetchReport,
        progress: &dyn Progress,
    ) -> FetchReport {
        if let Some(s) = seeder {
            report.swarm = Some(s.finish(progress).await);
        }
        report
    }
}

/// Whether another process (`lode serve`) serves `repo`: then it, not this download, serves
/// the repository's objects to the swarm.
pub(super) fn served_elsewhere(repo: &Repo) -> bool {
    let path = repo.root().join(".lode").join("serve.lock");
    path.exists()
        && matches!(
            crate::db::WriteLock::acquire(&path, std::time::Duration::ZERO),
            Err(Error::Locked { .. })
        )
}

/// Starts the swarm session of a download of a public dataset on `client`'s endpoint (bound
/// with the device key of `home`), its blob store in `dir`; a download into `repo` also
/// serves the small objects it lands in the repository's object store.
pub(super) async fn join_swarm(
    client: &mut Client,
    home: &Home,
    dir: std::path::PathBuf,
    repo: Option<&Repo>,
    share: &crate::net::endpoint::ShareOptions,
) -> Result<()> {
    let session = crate::net::swarm::session::Session::start(
        &client.net,
        &home.device_key()?,
        client.ticket.dataset,
        client.providers.clone(),
        client.cap.as_ref().map(Bundle::encode),
        dir,
        repo.map(crate::net::serve::blobs::Source::of),
        share,
    )
    .await?;
    client.swarm = Some(session);
    Ok(())
}

/// Joins the swarm of a download into `repo` of a public dataset (none for a `private`
/// one: docs/SECURITY.md). It serves unless told not to (`serve` off: a mirror's follow
/// round, whose `lode serve` serves what the round completed) or another process serves
/// the repository.
pub(super) async fn join_repo_swarm(
    client: &mut Client,
    repo: &Repo,
    private: bool,
    share: &crate::net::endpoint::ShareOptions,
    serve: bool,
) -> Result<()> {
    if !share.enabled || private {
        return Ok(());
    }
    let mut share = share.clone();
    share.serve &= serve && !served_elsewhere(repo);
    let dir = super::store::swarm_store_dir(repo);
    join_swarm(client, repo.home(), dir, Some(repo), &share).await
}
