//! The core error type. Every variant carries the path, object or revision it is about, and
//! [`Error::hint`] says what the user can do; the CLI prints both on one line.

use std::io;
use std::path::PathBuf;

use crate::id::ObjectId;

/// Result alias for the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a repository operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a lode repository (or any parent up to /): {}", .0.display())]
    NotARepo(PathBuf),
    #[error("a lode repository already exists at {}", .0.display())]
    AlreadyRepo(PathBuf),
    #[error("{} is not empty ({entries} entries, such as {first:?}): a clone goes into a new or empty directory", .dir.display())]
    NotEmpty {
        dir: PathBuf,
        entries: usize,
        first: String,
    },
    #[error("path {} is outside the repository at {}", .path.display(), .root.display())]
    OutsideRepo { path: PathBuf, root: PathBuf },
    #[error("path {} is inside a .lode control directory (any spelling: .LODE, LODE~1...)", .0.display())]
    InsideLodeDir(PathBuf),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("too many open files: {what} {}: this process reached its limit of open files; raise it (`ulimit -n`) and try again", .path.display())]
    TooManyFiles { what: &'static str, path: PathBuf },
    #[error("file {} changed while it was being added", .0.display())]
    FileChanged(PathBuf),
    #[error("file name {} is not valid UTF-8", .0.display())]
    NonUtf8Name(PathBuf),
    #[error("{} is not a regular file, directory or symlink", .0.display())]
    SpecialFile(PathBuf),
    #[error("pathspec {0:?} did not match any file")]
    NoMatch(String),
    #[error("another lode command is writing to the repository at {} ({holder})", .path.display())]
    Locked { path: PathBuf, holder: String },
    #[error("the repository database {} is busy", .0.display())]
    DbBusy(PathBuf),
    #[error("the repository database {} is unreadable or corrupt: {msg}", .path.display())]
    DbCorrupt { path: PathBuf, msg: String },
    #[error("repository database error: {0}")]
    Db(String),
    #[error("object {id} is corrupt (its bytes do not hash to its id){}", fmt_path(.path))]
    ObjectCorrupt { id: ObjectId, path: Option<String> },
    #[error("object {id} is missing from the store{}", fmt_path(.path))]
    ObjectMissing { id: ObjectId, path: Option<String> },
    #[error("object {id} is not a valid {what}: {msg}")]
    BadObject {
        id: ObjectId,
        what: &'static str,
        msg: String,
    },
    #[error("unknown revision {0:?}")]
    UnknownRev(String),
    #[error("revision {rev:?} is ambiguous: {count} commits start with it")]
    AmbiguousRev { rev: String, count: usize },
    #[error("revision {rev:?} has no ancestor {n} steps back")]
    RevTooFarBack { rev: String, n: usize },
    #[error("the repository has no commits yet")]
    NoCommits,
    #[error("path {path:?} does not exist in {rev}")]
    PathNotInRev { path: String, rev: String },
    #[error("{path:?} in {rev} is a {kind}, not a file")]
    NotAFile {
        path: String,
        rev: String,
        kind: &'static str,
    },
    #[error("nothing to commit: the staged tree and metadata equal HEAD")]
    NothingToCommit,
    #[error("empty commit message")]
    EmptyMessage,
    #[error("checkout would overwrite uncommitted changes in {}", list(.0))]
    Dirty(Vec<String>),
    #[error("checkout would overwrite untracked files {}", list(.0))]
    UntrackedInTheWay(Vec<String>),
    #[error(
        "refusing to delete {}: no commit holds its content, or it differs from what is staged",
        list(.0)
    )]
    RmUnsaved(Vec<String>),
    #[error("get would replace {} (different content is already there)", list(.0))]
    WouldOverwrite(Vec<String>),
    #[error("{} is already served by another `lode serve` (pid {pid})", .repo.display())]
    AlreadyServed { repo: PathBuf, pid: String },
    #[error("{0} in the working tree is in the way (a symlink or file where a directory must be)")]
    PathInTheWay(String),
    #[error("tag {0:?} already exists")]
    TagExists(String),
    #[error("invalid tag name {0:?}")]
    BadTagName(String),
    #[error("unknown metadata key {0:?}")]
    BadMetaKey(String),
    #[error("unknown metadata key `{given}`: did you mean `{known}`?")]
    NearMetaKey { given: String, known: &'static str },
    #[error("license {0}")]
    BadLicense(String),
    #[error("key file {}: {msg}", .path.display())]
    Key { path: PathBuf, msg: String },
    #[error("invalid ticket: {0}")]
    BadTicket(#[from] crate::ticket::TicketError),
    #[error("{0}")]
    Trust(#[from] crate::trust::TrustError),
    #[error("peer {peer}: not authorized: {msg}")]
    NotAuthorized { peer: String, msg: String },
    #[error("peer {peer} serves an older head of the dataset (sequence {got}) than this repository has seen ({have}): it is stale or rolling the dataset back")]
    Rollback { peer: String, got: u64, have: u64 },
    #[error("cannot reach peer {peer}: {msg}")]
    Unreachable { peer: String, msg: String },
    #[error("peer {peer}: {msg}")]
    Peer { peer: String, msg: String },
    #[error("peer {peer} sent bad data: {msg}")]
    LyingPeer { peer: String, msg: String },
    #[error("no provider could serve the dataset: {0}")]
    NoProvider(String),
    #[error("network error: {0}")]
    Net(String),
    #[error("{what} diverged from the remote: {local} is not an ancestor of {remote}")]
    Diverged {
        what: String,
        local: String,
        remote: String,
    },
    #[error("push rejected by {peer}: {msg}")]
    PushRejected { peer: String, msg: String },
    #[error("main moved on: expected {expected}, found {found}")]
    Stale { expected: String, found: String },
    #[error("{new} does not descend from {current}: not a fast-forward")]
    NotFastForward { current: String, new: String },
    #[error("unknown remote {0:?}")]
    UnknownRemote(String),
    #[error("{0}")]
    Other(String),
}

/// Whether an I/O error means the process (EMFILE) or the system (ENFILE) has no file
/// descriptor left.
pub fn too_many_files(e: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
    )
}

fn fmt_path(p: &Option<String>) -> String {
    p.as_ref().map(|p| format!(" at {p:?}")).unwrap_or_default()
}

fn list(paths: &[String]) -> String {
    let mut s: Vec<String> = paths.iter().take(5).map(|p| format!("{p:?}")).collect();
    if paths.len() > 5 {
        s.push(format!("and {} more", paths.len() - 5));
    }
    s.join(", ")
}

impl Error {
    /// Builds an I/O error that names what was being done and to which path. Running out
    /// of file descriptors gets an error of its own ([`Error::TooManyFiles`]).
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        if too_many_files(&source) {
            return Error::TooManyFiles {
                what,
                path: path.into(),
            };
        }
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Says what the user can do about this error.
    pub fn hint(&self) -> Option<String> {
        use std::io::ErrorKind;
        Some(match self {
            Error::NotARepo(_) => "run `lode init` to create one, or `cd` into a dataset".into(),
            Error::AlreadyRepo(_) => "use the existing repository, or choose another directory".into(),
            Error::NotEmpty { .. } => "name a new directory (`lode clone TICKET NEW-DIR`); lode never clones over files that are already there".into(),
            Error::OutsideRepo { .. } => "give paths inside the dataset directory".into(),
            Error::InsideLodeDir(_) => "lode manages .lode itself and never records a file inside one, at any depth; rename the directory or add the dataset's other files".into(),
            Error::Io { source, .. } => match source.kind() {
                ErrorKind::PermissionDenied => {
                    "fix the permissions, or list the path in .lodeignore".into()
                }
                ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
                    "free disk space and run the command again; nothing was half-written".into()
                }
                ErrorKind::NotFound => "check that the path exists".into(),
                _ => return None,
            },
            Error::TooManyFiles { .. } => {
                "raise the open-file limit (`ulimit -n 4096` in the shell that starts lode, LimitNOFILE= for a service), or close other programs".into()
            }
            Error::FileChanged(_) => {
                "wait until the file is no longer being written, then add it again".into()
            }
            Error::NonUtf8Name(_) => "rename the file to a UTF-8 name, or list it in .lodeignore".into(),
            Error::SpecialFile(_) => "list it in .lodeignore".into(),
            Error::NoMatch(_) => "check the path; `lode status` lists what is tracked".into(),
            Error::Locked { .. } | Error::DbBusy(_) => {
                "wait for the other command to finish, then try again".into()
            }
            Error::DbCorrupt { .. } | Error::Db(_) => {
                "restore .lode/lode.redb from a backup, or clone the dataset again into a new directory; the working tree's files are not touched, and `lode verify` then checks the objects".into()
            }
            Error::ObjectCorrupt { .. } | Error::ObjectMissing { .. } | Error::BadObject { .. } => {
                "run `lode verify` to list damaged objects; fetch them again from a peer or restore them from a backup".into()
            }
            Error::UnknownRev(_) | Error::AmbiguousRev { .. } | Error::RevTooFarBack { .. } => {
                "use a commit id (or a longer prefix), a tag, HEAD or HEAD~N; `lode log` lists commits".into()
            }
            Error::NoCommits => "run `lode add` and `lode commit` first".into(),
            Error::PathNotInRev { .. } | Error::NotAFile { .. } => {
                "`lode ls REV` lists the files of a revision".into()
            }
            Error::NothingToCommit => "change files and `lode add` them, or edit `lode meta`".into(),
            Error::EmptyMessage => "pass a message with -m".into(),
            Error::Dirty(_) | Error::UntrackedInTheWay(_) | Error::PathInTheWay(_) => {
                "commit or move your changes first, or pass --force to discard them".into()
            }
            Error::AlreadyServed { pid, .. } => format!("one `lode serve` per repository is enough: use the running one (its ticket is in .lode/serve.ticket), or stop it first (kill {pid})"),
            Error::WouldOverwrite(_) => "move or save your files first, choose another --to, or pass --force to replace them".into(),
            Error::RmUnsaved(_) => "use `lode rm --cached` to unstage and keep the files, or `lode rm --force` to delete them anyway".into(),
            Error::TagExists(_) => "choose another name, or pass --force to move the tag".into(),
            Error::BadTagName(_) => "tag names use letters, digits, '.', '_', '-' and '/'".into(),
            Error::NearMetaKey { given, known } => format!(
                "use `lode meta {known} ...`; to keep a field of your own named like this, write `lode meta extra.{given} ...`"
            ),
            Error::BadLicense(_) => "use an SPDX identifier or expression (https://spdx.org/licenses/), e.g. CC-BY-4.0 or `MIT OR Apache-2.0`; for terms SPDX does not list, LicenseRef-NAME".into(),
            Error::BadMetaKey(_) => {
                "keys are title, description, license, authors, keywords, or extra.NAME".into()
            }
            Error::Key { .. } => "check LODE_HOME and the key file's permissions (0600)".into(),
            Error::BadTicket(_) => {
                "copy the whole ticket again from `lode serve` or `lode ticket` on the serving peer".into()
            }
            Error::Trust(crate::trust::TrustError::Malformed(what, _))
                if what.contains("identity card") =>
            {
                "ask the holder to send their identity card again (`lode id --card` on their device), and copy it whole".into()
            }
            Error::Trust(_) => {
                "ask the dataset owner for a new ticket (`lode grant`), and copy it whole".into()
            }
            Error::NotAuthorized { .. } => {
                "ask the dataset owner for a ticket (`lode grant`) and pass it with --ticket".into()
            }
            Error::Rollback { .. } => {
                "fetch from another provider, or from the dataset's origin".into()
            }
            Error::Unreachable { .. } | Error::NoProvider(_) | Error::Net(_) => {
                "check that `lode serve` runs on the peer and that its address in the ticket is reachable; if it now serves on another address, take its new ticket (`lode serve` prints it; .lode/serve.ticket there) and run `lode remote add origin NEW-TICKET`".into()
            }
            Error::Peer { msg, .. } if msg.to_lowercase().contains("too many open files") => {
                "the peer ran out of file descriptors: whoever runs it should raise its limit (`ulimit -n`); try again later".into()
            }
            Error::Peer { msg, .. } if msg.contains("too many requests") || msg.contains("is busy") => {
                "wait a few seconds and try again".into()
            }
            Error::Peer { .. } => "check that both peers run the same lode version".into(),
            Error::LyingPeer { .. } => {
                "nothing of its bad data was kept; fetch again from another provider".into()
            }
            Error::Diverged { .. } => "merging is not supported yet: compare with `lode log`, then take one side with `lode checkout -f REV`".into(),
            Error::PushRejected { .. } | Error::Stale { .. } | Error::NotFastForward { .. } => {
                "run `lode pull` to bring in the other changes, then push again (or push --force to overwrite them)".into()
            }
            Error::UnknownRemote(_) => "`lode remote list` shows the remotes; `lode remote add NAME TICKET` adds one".into(),
            Error::Other(_) => return None,
        })
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::Db(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Db(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
