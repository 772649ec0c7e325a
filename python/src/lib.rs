//! `lode._native`: the Python API over the lode library, and the `lode` command line.
//!
//! Every function here takes its settings explicitly (home, cache directory, network options);
//! `python/lode/__init__.py` reads the environment and gives the documented signatures. The
//! GIL is released whenever Rust waits on the network or the disk. Errors become the typed
//! exceptions of `lode` (see [`to_py`]).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};

use lode::keys::Home;
use lode::net::endpoint::{NetOptions, Relay};
use lode::net::fetch::{self, Cache, Client, Entry, Listing};
use lode::net::source::Source;
use lode::object::EntryKind;
use lode::{Error, ObjectId, Repo, RepoOptions};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

// The command line, compiled into the module so that the wheel's `lode` script needs no
// second binary (docs/ARCHITECTURE.md, "The Python package").
#[allow(dead_code)]
#[path = "../../src/cli/mod.rs"]
mod cli;

create_exception!(
    lode,
    LodeError,
    PyException,
    "Any lode failure; `.hint` says what to do."
);
create_exception!(
    lode,
    NotAuthorized,
    LodeError,
    "The providers refused: no ticket, or one that is expired, revoked, or for someone else."
);
create_exception!(
    lode,
    VerificationError,
    LodeError,
    "Received data did not match its BLAKE3 id or signature; nothing of it was kept."
);
create_exception!(
    lode,
    PeerUnreachable,
    LodeError,
    "No provider of the dataset could be reached."
);
create_exception!(
    lode,
    NotFound,
    LodeError,
    "The path, revision, dataset or repository does not exist."
);

/// Maps a lode error to its exception, carrying the message and hint (`.hint`).
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    let hint = e.hint();
    let err = match &e {
        Error::NotAuthorized { .. } | Error::Trust(_) => NotAuthorized::new_err(msg),
        Error::LyingPeer { .. }
        | Error::ObjectCorrupt { .. }
        | Error::BadObject { .. }
        | Error::Rollback { .. } => VerificationError::new_err(msg),
        Error::Unreachable { .. } | Error::NoProvider(_) | Error::Net(_) => {
            PeerUnreachable::new_err(msg)
        }
        Error::PathNotInRev { .. }
        | Error::UnknownRev(_)
        | Error::NotARepo(_)
        | Error::NotAFile { .. }
        | Error::NoCommits
        | Error::UnknownRemote(_) => NotFound::new_err(msg),
        Error::Other(m) if m.starts_with("no known provider") => NotFound::new_err(msg),
        _ => LodeError::new_err(msg),
    };
    let _ = err.value(py).setattr("hint", hint);
    err
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("lode")
            .build()
            .expect("a tokio runtime can be built")
    })
}

/// Network options from the keyword arguments (already defaulted from the environment).
fn net_options(relay: &str, discovery: bool, bind: Option<&str>) -> Result<NetOptions, Error> {
    let relay = match relay {
        "default" => Relay::Default,
        "disabled" | "off" | "none" => Relay::Disabled,
        url => Relay::Url(url.to_string()),
    };
    let bind = bind
        .map(|b| {
            b.parse()
                .map_err(|_| Error::Other(format!("bind: {b:?} is not a socket address (IP:PORT)")))
        })
        .transpose()?;
    Ok(NetOptions {
        bind,
        relay,
        discovery,
        // A script's download does not linger to seed a swarm.
        ..Default::default()
    })
}

/// What every remote call shares.
struct Ctx {
    home: Home,
    cache: PathBuf,
    net: NetOptions,
}

impl Ctx {
    fn new(
        home: PathBuf,
        cache: PathBuf,
        relay: &str,
        discovery: bool,
        bind: Option<&str>,
    ) -> Result<Ctx, Error> {
        Ok(Ctx {
            home: Home::new(home),
            cache,
            net: net_options(relay, discovery, bind)?,
        })
    }
}

/// A listing, from the cache when `rev` pins it (a tag or commit id seen before, unless
/// `refresh`), else from the providers (recorded in the cache); when no provider answers, the
/// listing `rev` had last time. Returns the client when one was connected, and whether the
/// answer is the cached fallback.
async fn listing(
    ctx: &Ctx,
    cache: &Cache,
    src: &Source,
    refresh: bool,
) -> Result<(Listing, Option<Client>, bool), Error> {
    let dataset = src.ticket.dataset;
    let rev = src.rev.as_deref();
    if !refresh && rev.is_some() {
        if let Some(l) = cache.resolve(&dataset, rev) {
            return Ok((l, None, false));
        }
    }
    let mut client = Client::new(&ctx.home, &src.ticket, src.cap.clone(), &ctx.net).await?;
    match fetch::list(&mut client, rev).await {
        Ok(l) => {
            lode::net::uri::remember(&ctx.home, &src.ticket);
            cache.record(&dataset, rev, &l);
            Ok((l, Some(client), false))
        }
        Err(e @ (Error::Unreachable { .. } | Error::NoProvider(_))) => {
            client.close().await;
            match cache.resolve(&dataset, rev) {
                Some(l) => Ok((l, None, true)),
                None => Err(e),
            }
        }
        Err(e) => {
            client.close().await;
            Err(e)
        }
    }
}

/// Fetches into the cache the blobs of `entries` it lacks (connecting when needed).
async fn fill(
    ctx: &Ctx,
    cache: &Cache,
    src: &Source,
    client: &mut Option<Client>,
    entries: &[&Entry],
    progress: &dyn lode::progress::Progress,
) -> Result<(), Error> {
    let wanted: Vec<(ObjectId, u64)> = entries
        .iter()
        .filter(|e| !cache.store().has(&e.id))
        .map(|e| (e.id, e.size))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    if client.is_none() {
        *client = Some(Client::new(&ctx.home, &src.ticket, src.cap.clone(), &ctx.net).await?);
    }
    let c = client.as_mut().expect("connected above");
    fetch::fetch_blobs(c, &wanted, cache.store(), progress).await?;
    Ok(())
}

/// Progress handed to a Python callable `callback(phase, done_bytes, total_bytes)`: at the
/// start of a phase, at most every 100 ms while bytes arrive, and when a phase ends.
struct PyProgress {
    callback: Py<PyAny>,
    state: Mutex<(&'static str, u64, std::time::Instant)>,
    done: std::sync::atomic::AtomicU64,
}

impl PyProgress {
    fn new(callback: Py<PyAny>) -> PyProgress {
        PyProgress {
            callback,
            state: Mutex::new(("", 0, std::time::Instant::now())),
            done: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn call(&self, phase: &'static str, total: u64) {
        let done = self.done.load(std::sync::atomic::Ordering::Relaxed);
        Python::attach(|py| {
            // A failing callback must not stop the transfer; Python prints it as unraisable.
            if let Err(e) = self.callback.call1(py, (phase, done, total)) {
                e.write_unraisable(py, None);
            }
        });
    }
}

impl lode::progress::Progress for PyProgress {
    fn phase(&self, name: &'static str, _files: u64, bytes: u64) {
        self.done.store(0, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut st) = self.state.lock() {
            *st = (name, bytes, std::time::Instant::now());
        }
        self.call(name, bytes);
    }

    fn inc(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        let due = match self.state.lock() {
            Ok(mut st) if st.2.elapsed() >= std::time::Duration::from_millis(100) => {
                st.2 = std::time::Instant::now();
                Some((st.0, st.1))
            }
            _ => None,
        };
        if let Some((name, total)) = due {
            self.call(name, total);
        }
    }

    fn finish(&self) {
        let (name, total) = match self.state.lock() {
            Ok(st) => (st.0, st.1),
            Err(_) => return,
        };
        if !name.is_empty() {
            self.call(name, total);
        }
    }
}

fn progress_of(callback: Option<Py<PyAny>>) -> Box<dyn lode::progress::Progress> {
    match callback {
        Some(cb) => Box::new(PyProgress::new(cb)),
        None => Box::new(lode::progress::NoProgress),
    }
}

async fn close(client: Option<Client>) {
    if let Some(c) = client {
        c.close().await;
    }
}

fn wanted_paths(src: &Source, paths: Vec<String>) -> Result<Vec<String>, Error> {
    let mut all = src.paths.clone();
    all.extend(paths.iter().map(|p| p.trim_matches('/').to_string()));
    if all.is_empty() {
        return Err(Error::Other(
            "name the files or directories to get (after the source, or in the lode:// URI; \"\" for everything)".into(),
        ));
    }
    Ok(all)
}

/// get(source, paths, dest, rev, ticket, force, refresh, home, cache, relay, discovery, bind)
/// -> (written paths, whether the cached listing stood in for unreachable providers)
#[pyfunction]
#[pyo3(signature = (source, paths, dest, rev, ticket, force, refresh, home, cache, relay, discovery, bind, progress=None))]
#[allow(clippy::too_many_arguments)]
fn get(
    py: Python<'_>,
    source: String,
    paths: Vec<String>,
    dest: PathBuf,
    rev: Option<String>,
    ticket: Option<String>,
    force: bool,
    refresh: bool,
    home: PathBuf,
    cache: PathBuf,
    relay: String,
    discovery: bool,
    bind: Option<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<PathBuf>, bool)> {
    let r = py.detach(|| -> Result<(Vec<PathBuf>, bool), Error> {
        let progress = progress_of(progress);
        let ctx = Ctx::new(home, cache, &relay, discovery, bind.as_deref())?;
        runtime().block_on(async {
            let mut src =
                lode::net::source::resolve_source(&ctx.home, &source, ticket.as_deref(), &ctx.net)
                    .await?;
            if rev.is_some() {
                src.rev = rev;
            }
            let paths = wanted_paths(&src, paths)?;
            let cache = Cache::open(&ctx.cache)?;
            let (l, mut client, fallback) = listing(&ctx, &cache, &src, refresh).await?;
            let result = async {
                let entries = fetch::select(&l, &paths)?;
                fill(&ctx, &cache, &src, &mut client, &entries, &*progress).await?;
                std::fs::create_dir_all(&dest)
                    .map_err(|e| Error::io("cannot create directory", &dest, e))?;
                cache.export(&entries, &dest, force)
            }
            .await;
            close(client).await;
            Ok((result?, fallback))
        })
    });
    r.map_err(|e| to_py(py, e))
}

/// ls(source, rev, ticket, refresh, home, cache, relay, discovery, bind)
/// -> (commit hex, [(path, kind, size, id hex)], fallback)
#[pyfunction]
#[pyo3(signature = (source, rev, ticket, refresh, home, cache, relay, discovery, bind))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn ls(
    py: Python<'_>,
    source: String,
    rev: Option<String>,
    ticket: Option<String>,
    refresh: bool,
    home: PathBuf,
    cache: PathBuf,
    relay: String,
    discovery: bool,
    bind: Option<String>,
) -> PyResult<(String, Vec<(String, &'static str, u64, String)>, bool)> {
    let r = py.detach(|| -> Result<_, Error> {
        let ctx = Ctx::new(home, cache, &relay, discovery, bind.as_deref())?;
        runtime().block_on(async {
            let mut src =
                lode::net::source::resolve_source(&ctx.home, &source, ticket.as_deref(), &ctx.net)
                    .await?;
            if rev.is_some() {
                src.rev = rev;
            }
            let cache = Cache::open(&ctx.cache)?;
            let (l, client, fallback) = listing(&ctx, &cache, &src, refresh).await?;
            close(client).await;
            let prefix = src.paths.first().cloned().unwrap_or_default();
            let rows = l
                .entries
                .iter()
                .filter(|e| lode::worktree::under(&e.path, &prefix))
                .map(|e| (e.path.clone(), e.kind.as_str(), e.size, e.id.to_hex()))
                .collect();
            Ok((l.commit.to_hex(), rows, fallback))
        })
    });
    r.map_err(|e| to_py(py, e))
}

/// A verified byte stream: a cached object (hashed whole before the first byte is handed
/// out) or a blob streaming from a provider (each 16 KiB group verified before it arrives).
#[pyclass(module = "lode._native")]
struct Reader {
    inner: Mutex<ReaderState>,
    #[pyo3(get)]
    size: u64,
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    cached: bool,
}

struct ReaderState {
    rx: Option<Receiver<Result<bytes::Bytes, Error>>>,
    file: Option<std::fs::File>,
    buf: bytes::Bytes,
    done: bool,
}

#[pymethods]
impl Reader {
    /// Reads up to `n` bytes (all the rest for n < 0); b"" at the end.
    #[pyo3(signature = (n=-1))]
    fn read<'py>(&self, py: Python<'py>, n: i64) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let out = py.detach(|| -> Result<Vec<u8>, Error> {
            let mut st = self
                .inner
                .lock()
                .map_err(|_| Error::Other("reader poisoned".into()))?;
            let want = if n < 0 { usize::MAX } else { n as usize };
            let mut out = Vec::new();
            while out.len() < want {
                if st.buf.is_empty() {
                    if st.done {
                        break;
                    }
                    if let Some(f) = st.file.as_mut() {
                        use std::io::Read;
                        let mut chunk = vec![0u8; (want - out.len()).min(1 << 20)];
                        let k = f
                            .read(&mut chunk)
                            .map_err(|e| Error::io("cannot read", "cached object", e))?;
                        if k == 0 {
                            st.done = true;
                            break;
                        }
                        chunk.truncate(k);
                        st.buf = chunk.into();
                    } else {
                        let next = st.rx.as_ref().and_then(|rx| rx.recv().ok());
                        match next {
                            Some(Ok(b)) => st.buf = b,
                            Some(Err(e)) => {
                                st.done = true;
                                st.rx = None;
                                return Err(e);
                            }
                            None => {
                                st.done = true;
                                break;
                            }
                        }
                    }
                }
                let k = st.buf.len().min(want - out.len());
                out.extend_from_slice(&st.buf.split_to(k));
            }
            Ok(out)
        });
        match out {
            Ok(v) => Ok(pyo3::types::PyBytes::new(py, &v)),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Stops the stream (the provider's connection closes).
    fn close(&self) {
        if let Ok(mut st) = self.inner.lock() {
            st.rx = None;
            st.file = None;
            st.done = true;
            st.buf = bytes::Bytes::new();
        }
    }
}

/// A cached object opened for reading after hashing it whole (a damaged cache file is
/// removed and reported, never read).
fn open_cached(cache: &Cache, e: &Entry) -> Result<Option<std::fs::File>, Error> {
    if !cache.store().has(&e.id) {
        return Ok(None);
    }
    let f = cache.store().open(&e.id)?;
    let (got, _) = lode::store::hash_reader(&f)
        .map_err(|err| Error::io("cannot read", cache.store().path(&e.id), err))?;
    if got != e.id {
        let path = cache.store().path(&e.id);
        let _ = std::fs::remove_file(&path);
        return Err(Error::ObjectCorrupt {
            id: e.id,
            path: Some(e.path.clone()),
        });
    }
    cache.store().open(&e.id).map(Some)
}

/// open(source, path, rev, ticket, refresh, home, cache, relay, discovery, bind) -> Reader
#[pyfunction]
#[pyo3(signature = (source, path, rev, ticket, refresh, home, cache, relay, discovery, bind))]
#[allow(clippy::too_many_arguments)]
fn open(
    py: Python<'_>,
    source: String,
    path: Option<String>,
    rev: Option<String>,
    ticket: Option<String>,
    refresh: bool,
    home: PathBuf,
    cache: PathBuf,
    relay: String,
    discovery: bool,
    bind: Option<String>,
) -> PyResult<Reader> {
    let r = py.detach(|| -> Result<Reader, Error> {
        let ctx = Ctx::new(home, cache, &relay, discovery, bind.as_deref())?;
        runtime().block_on(async {
            let mut src =
                lode::net::source::resolve_source(&ctx.home, &source, ticket.as_deref(), &ctx.net)
                    .await?;
            if rev.is_some() {
                src.rev = rev;
            }
            let paths = wanted_paths(&src, path.into_iter().collect())?;
            if paths.len() != 1 || paths[0].is_empty() {
                return Err(Error::Other(
                    "open reads one file: name exactly one path".into(),
                ));
            }
            let cache = Cache::open(&ctx.cache)?;
            let (l, client, _) = listing(&ctx, &cache, &src, refresh).await?;
            let entry = match l.entries.iter().find(|e| e.path == paths[0]) {
                Some(e) if matches!(e.kind, EntryKind::File | EntryKind::Executable) => e.clone(),
                Some(e) => {
                    close(client).await;
                    return Err(Error::NotAFile {
                        path: e.path.clone(),
                        rev: l.commit.short(),
                        kind: e.kind.as_str(),
                    });
                }
                None => {
                    close(client).await;
                    return Err(Error::PathNotInRev {
                        path: paths[0].clone(),
                        rev: l.commit.short(),
                    });
                }
            };
            let reader = |rx, file, cached| Reader {
                inner: Mutex::new(ReaderState {
                    rx,
                    file,
                    buf: bytes::Bytes::new(),
                    done: false,
                }),
                size: entry.size,
                id: entry.id.to_hex(),
                cached,
            };
            if let Some(f) = open_cached(&cache, &entry)? {
                close(client).await;
                return Ok(reader(None, Some(f), true));
            }
            let mut client = match client {
                Some(c) => c,
                None => Client::new(&ctx.home, &src.ticket, src.cap.clone(), &ctx.net).await?,
            };
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<bytes::Bytes, Error>>(16);
            let id = entry.id;
            runtime().spawn(async move {
                let sink = |_at: u64, data: bytes::Bytes| send(&tx, Ok(data));
                if let Err(e) =
                    fetch::stream(&mut client, id, &sink, &lode::progress::NoProgress).await
                {
                    let _ = send(&tx, Err(e));
                }
                client.close().await;
            });
            Ok(reader(Some(rx), None, false))
        })
    });
    r.map_err(|e| to_py(py, e))
}

/// Hands a batch to the reader (blocking this worker while the reader is behind); a
/// reader that went away stops the stream.
fn send(
    tx: &SyncSender<Result<bytes::Bytes, Error>>,
    m: Result<bytes::Bytes, Error>,
) -> Result<(), Error> {
    lode::net::pieces::send_blocking(tx, m)
        .map_err(|_| Error::Other("the reader was closed".into()))
}

/// clone(source, dest, ticket, link, home, relay, discovery, bind, progress, lazy) -> repository root
#[pyfunction]
#[pyo3(signature = (source, dest, ticket, link, home, relay, discovery, bind, progress=None, lazy=false))]
#[allow(clippy::too_many_arguments)]
fn clone(
    py: Python<'_>,
    source: String,
    dest: PathBuf,
    ticket: Option<String>,
    link: bool,
    home: PathBuf,
    relay: String,
    discovery: bool,
    bind: Option<String>,
    progress: Option<Py<PyAny>>,
    lazy: bool,
) -> PyResult<PathBuf> {
    let r = py.detach(|| -> Result<PathBuf, Error> {
        let progress = progress_of(progress);
        let ctx = Ctx::new(home, PathBuf::new(), &relay, discovery, bind.as_deref())?;
        runtime().block_on(async {
            let src =
                lode::net::source::resolve_source(&ctx.home, &source, ticket.as_deref(), &ctx.net)
                    .await?;
            let (repo, _) = fetch::clone(
                &dest,
                ctx.home.clone(),
                RepoOptions::default(),
                &src.ticket,
                fetch::CloneOptions {
                    cap: src.cap,
                    mirror: false,
                    link,
                    lazy,
                },
                &ctx.net,
                &*progress,
            )
            .await?;
            Ok(repo.root().to_path_buf())
        })
    });
    r.map_err(|e| to_py(py, e))
}

/// uri(ticket, path=None, rev=None) -> a lode:// URI that carries the ticket's providers.
#[pyfunction]
#[pyo3(signature = (ticket, path=None, rev=None))]
fn uri(py: Python<'_>, ticket: &str, path: Option<&str>, rev: Option<&str>) -> PyResult<String> {
    let (t, _) = fetch::resolve_ticket(ticket, None).map_err(|e| to_py(py, e))?;
    Ok(lode::net::uri::format(&t, path, rev))
}

/// Runs the `lode` command line with `argv` (program name first); returns the exit status.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> u8 {
    py.detach(|| {
        let code = cli::run_args(argv);
        // A native program's stdout is flushed when `main` returns; here Python goes on.
        let _ = std::io::Write::flush(&mut std::io::stdout());
        code
    })
}

/// A local repository, for scripts that publish.
#[pyclass(module = "lode._native")]
struct Repository {
    root: PathBuf,
    home: PathBuf,
}

impl Repository {
    fn repo(&self) -> Result<Repo, Error> {
        Repo::discover(&self.root, Home::new(&self.home), RepoOptions::default())
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::Other(e.to_string()))
}

#[pymethods]
impl Repository {
    /// Opens the repository at or above `path`; with `init`, creates one at `path` first.
    #[new]
    #[pyo3(signature = (path, home, init=false))]
    fn new(py: Python<'_>, path: PathBuf, home: PathBuf, init: bool) -> PyResult<Repository> {
        let r = py.detach(|| -> Result<Repository, Error> {
            let repo = if init {
                std::fs::create_dir_all(&path)
                    .map_err(|e| Error::io("cannot create directory", &path, e))?;
                Repo::init(&path, Home::new(&home), RepoOptions::default())?
            } else {
                Repo::discover(&path, Home::new(&home), RepoOptions::default())?
            };
            Ok(Repository {
                root: repo.root().to_path_buf(),
                home,
            })
        });
        r.map_err(|e| to_py(py, e))
    }

    #[getter]
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// Stages paths (relative to the repository root, or absolute); JSON report.
    fn add(&self, py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<String> {
        py.detach(|| -> Result<String, Error> {
            let repo = self.repo()?;
            let rel = paths
                .iter()
                .map(|p| repo.repo_path(&self.root, p))
                .collect::<Result<Vec<_>, _>>()?;
            json(&lode::ops::add::add(
                &repo,
                &rel,
                Default::default(),
                &lode::progress::NoProgress,
            )?)
        })
        .map_err(|e| to_py(py, e))
    }

    /// Commits what is staged; JSON report.
    fn commit(&self, py: Python<'_>, message: String) -> PyResult<String> {
        py.detach(|| -> Result<String, Error> {
            json(&lode::ops::commit::commit(&self.repo()?, &message, false)?)
        })
        .map_err(|e| to_py(py, e))
    }

    /// JSON status report.
    fn status(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| -> Result<String, Error> { json(&lode::ops::status::status(&self.repo()?)?) })
            .map_err(|e| to_py(py, e))
    }

    /// JSON list of commits, newest first.
    #[pyo3(signature = (rev=None, limit=None))]
    fn log(&self, py: Python<'_>, rev: Option<String>, limit: Option<usize>) -> PyResult<String> {
        py.detach(|| -> Result<String, Error> {
            json(&lode::ops::history::log(
                &self.repo()?,
                rev.as_deref(),
                limit,
            )?)
        })
        .map_err(|e| to_py(py, e))
    }

    /// Sets `key` to `values` (an empty list unsets it) when given; JSON of the metadata
    /// the next commit records.
    #[pyo3(signature = (key=None, values=None))]
    fn meta(
        &self,
        py: Python<'_>,
        key: Option<String>,
        values: Option<Vec<String>>,
    ) -> PyResult<String> {
        py.detach(|| -> Result<String, Error> {
            let repo = self.repo()?;
            let m = match (key, values) {
                (Some(k), Some(v)) => lode::ops::meta::set(&repo, &k, &v)?,
                _ => repo.pending_metadata()?,
            };
            json(&m)
        })
        .map_err(|e| to_py(py, e))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LodeError", py.get_type::<LodeError>())?;
    m.add("NotAuthorized", py.get_type::<NotAuthorized>())?;
    m.add("VerificationError", py.get_type::<VerificationError>())?;
    m.add("PeerUnreachable", py.get_type::<PeerUnreachable>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add_class::<Reader>()?;
    m.add_class::<Repository>()?;
    m.add_function(wrap_pyfunction!(get, m)?)?;
    m.add_function(wrap_pyfunction!(ls, m)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(clone, m)?)?;
    m.add_function(wrap_pyfunction!(uri, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
