"""lode: version-controlled datasets, fetched peer to peer and verified by BLAKE3.

Fetch files of a published dataset by its ``lode://`` URI, its address ticket (``lode1…``)
or a capability ticket (``lodecap1…``)::

    import lode
    paths = lode.get("lode://5f2c…e1/tables/neurons.csv?rev=v1", dest="data")
    with lode.open("lode1…", "tables/neurons.csv") as f:   # streams verified bytes
        header = f.readline()
    for entry in lode.ls("lode1…"):
        print(entry.path, entry.size)

Every byte is verified against its BLAKE3 id before you see it; a read that would return
unverified bytes raises :class:`VerificationError` instead. Files fetched once are kept in a
cache keyed by BLAKE3 id (``LODE_CACHE_DIR``, default ``~/.cache/lode``), so loading them again
is a lookup. Failures raise :class:`LodeError` subclasses whose ``hint`` says what to do.

Network options (``relay``, ``discovery``, ``bind``) default to the ``LODE_RELAY``,
``LODE_NO_DISCOVERY`` and ``LODE_BIND`` variables, as for the ``lode`` command; keys live in
``LODE_HOME`` (default ``~/.config/lode``). See docs/PYTHON.md.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Union

from . import _native
from ._native import LodeError, NotAuthorized, NotFound, PeerUnreachable, VerificationError

__version__: str = _native.__version__

__all__ = [
    "Entry",
    "LodeError",
    "NotAuthorized",
    "NotFound",
    "PeerUnreachable",
    "Repository",
    "VerificationError",
    "clone",
    "get",
    "ls",
    "open",
    "read_bytes",
    "uri",
]

PathLike = Union[str, "os.PathLike[str]"]
ProgressCallback = Callable[[str, int, int], Any]
"""``callback(phase, done_bytes, total_bytes)``: at a phase's start, about every 100 ms, and
at its end (phases: ``receiving``; a clone also ``listing`` and ``checking out``)."""


def _progress(progress: Union[None, bool, ProgressCallback]) -> Optional[ProgressCallback]:
    """``True`` draws tqdm bars when tqdm is installed (nothing otherwise)."""
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        bars: Dict[str, Any] = {}

        def draw(phase: str, done: int, total: int) -> None:
            bar = bars.get(phase)
            if bar is None:
                bar = bars[phase] = tqdm(total=total or None, desc=phase, unit="B",
                                         unit_scale=True, unit_divisor=1024)
            bar.update(done - bar.n)
            if total and done >= total:
                bar.close()

        return draw
    return progress


def _home() -> str:
    home = os.environ.get("LODE_HOME")
    if home:
        return home
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support")
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "lode")


def _cache(cache_dir: Optional[PathLike]) -> str:
    if cache_dir is not None:
        return os.fspath(cache_dir)
    env = os.environ.get("LODE_CACHE_DIR")
    if env:
        return env
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "lode")


def _falsey(v: str) -> bool:
    return v.strip().lower() in ("", "0", "false", "no", "n", "off", "f")


def _net(relay: Optional[str], discovery: Optional[bool], bind: Optional[str]):
    if relay is None:
        relay = os.environ.get("LODE_RELAY") or "default"
    if discovery is None:
        discovery = _falsey(os.environ.get("LODE_NO_DISCOVERY", ""))
    if bind is None:
        bind = os.environ.get("LODE_BIND") or None
    return relay, bool(discovery), bind


def _fell_back(fallback: bool, source: str) -> None:
    if fallback:
        warnings.warn(
            f"no provider of {source} answered; using the revision cached when it last did",
            RuntimeWarning,
            stacklevel=3,
        )


class Entry(NamedTuple):
    """One entry of a dataset's tree, as :func:`ls` lists it."""

    path: str
    """``/``-separated path from the dataset's root."""
    kind: str
    """``file``, ``exec``, ``dir`` or ``symlink``."""
    size: int
    """Bytes of the file (of all files below, for a directory)."""
    id: str
    """BLAKE3 id (hex, as ``b3sum`` prints it for a file)."""


def get(
    source: str,
    *paths: str,
    dest: PathLike,
    rev: Optional[str] = None,
    ticket: Optional[str] = None,
    force: bool = False,
    refresh: bool = False,
    cache_dir: Optional[PathLike] = None,
    relay: Optional[str] = None,
    discovery: Optional[bool] = None,
    bind: Optional[str] = None,
    progress: Union[None, bool, ProgressCallback] = None,
) -> List[pathlib.Path]:
    """Fetches files or directories of a dataset into ``dest``, verified; returns the files.

    ``source`` is a ``lode://`` URI (whose path and ``rev`` count as if given here), an
    address ticket or a capability ticket; ``paths`` name files or directories of the
    dataset (``""`` for all). ``rev`` is a tag or full commit id (default: ``main``);
    ``ticket`` a capability ticket to present. Files already in ``dest`` with the same bytes
    are left alone; other content there is replaced only with ``force``.

    Blobs come from the cache when it has them. A tag or commit id seen before resolves
    from the cache without asking any provider (``refresh=True`` asks again); ``main`` is
    asked for each time, and when no provider answers, the ``main`` cached last time is used
    with a :class:`RuntimeWarning`. ``progress`` is a callback ``(phase, done, total)`` or
    ``True`` for tqdm bars.
    """
    written, fallback = _native.get(
        source,
        list(paths),
        os.fspath(dest),
        rev,
        ticket,
        force,
        refresh,
        _home(),
        _cache(cache_dir),
        *_net(relay, discovery, bind),
        _progress(progress),
    )
    _fell_back(fallback, source)
    return [pathlib.Path(p) for p in written]


def ls(
    source: str,
    rev: Optional[str] = None,
    *,
    ticket: Optional[str] = None,
    refresh: bool = False,
    cache_dir: Optional[PathLike] = None,
    relay: Optional[str] = None,
    discovery: Optional[bool] = None,
    bind: Optional[str] = None,
) -> List[Entry]:
    """Lists a revision's tree (directories and files, each with size and BLAKE3 id).

    Only commits and trees are fetched (each verified); a ``lode://`` URI with a path lists
    what is below it. Revisions resolve as for :func:`get`.
    """
    _commit, rows, fallback = _native.ls(
        source, rev, ticket, refresh, _home(), _cache(cache_dir), *_net(relay, discovery, bind)
    )
    _fell_back(fallback, source)
    return [Entry(*r) for r in rows]


class _Raw(io.RawIOBase):
    def __init__(self, reader: Any) -> None:
        self._r = reader
        self.size: int = reader.size
        self.id: str = reader.id

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._r.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def readall(self) -> bytes:
        return self._r.read(-1)

    def close(self) -> None:
        if not self.closed:
            self._r.close()
        super().close()


@contextmanager
def open(
    source: str,
    path: Optional[str] = None,
    rev: Optional[str] = None,
    *,
    ticket: Optional[str] = None,
    refresh: bool = False,
    cache_dir: Optional[PathLike] = None,
    relay: Optional[str] = None,
    discovery: Optional[bool] = None,
    bind: Optional[str] = None,
) -> Iterator[io.BufferedReader]:
    """Opens one file of a dataset as a binary file object that streams verified bytes.

    Nothing is written to disk: bytes stream from a provider, each 16 KiB group verified
    against the file's BLAKE3 id before it is handed on (a file already in the cache is read
    from there, after hashing it whole). A read that would return unverified bytes raises
    :class:`VerificationError`. ``path`` may be omitted when ``source`` is a URI naming the
    file. The object has ``.raw.size`` (bytes) and ``.raw.id`` (BLAKE3 hex).
    """
    reader = _native.open(
        source,
        path,
        rev,
        ticket,
        refresh,
        _home(),
        _cache(cache_dir),
        *_net(relay, discovery, bind),
    )
    f = io.BufferedReader(_Raw(reader), buffer_size=1 << 20)
    try:
        yield f
    finally:
        f.close()


def read_bytes(
    source: str,
    path: Optional[str] = None,
    rev: Optional[str] = None,
    **kwargs: Any,
) -> bytes:
    """Returns the verified bytes of one file (see :func:`open` for the arguments)."""
    with open(source, path, rev, **kwargs) as f:
        return f.read()


def clone(
    source: str,
    dest: PathLike,
    *,
    ticket: Optional[str] = None,
    link: bool = False,
    lazy: bool = False,
    relay: Optional[str] = None,
    discovery: Optional[bool] = None,
    bind: Optional[str] = None,
    progress: Union[None, bool, ProgressCallback] = None,
) -> "Repository":
    """Clones a dataset into the new or empty directory ``dest`` (as ``lode clone``).

    ``link=True`` hard-links the checked-out files to the object store (read-only files, no
    second copy on disk). ``lazy=True`` fetches commits and trees only (``lode clone
    --lazy``): file content comes later with ``lode get PATH`` inside the clone.
    ``progress`` as for :func:`get`. Returns the clone as a :class:`Repository`.
    """
    root = _native.clone(
        source, os.fspath(dest), ticket, link, _home(), *_net(relay, discovery, bind),
        _progress(progress), lazy,
    )
    return Repository(root)


def uri(ticket: str, path: Optional[str] = None, rev: Optional[str] = None) -> str:
    """A ``lode://DATASET-ID/PATH?rev=REV&provider=TICKET`` URI that carries the ticket's
    providers, so that it resolves on a machine that has never used a ticket (for data
    sources recorded in a graph, papers, configuration)."""
    return _native.uri(ticket, path, rev)


class Repository:
    """A local lode repository (``lode init`` / ``lode clone``), for scripts that publish.

    ``Repository(path)`` opens the repository at or above ``path``;
    ``Repository(path, init=True)`` creates one there first. Methods return plain dicts and
    lists, with the fields of the command's ``--json`` output (docs/JSON.md).
    """

    def __init__(self, path: PathLike = ".", *, init: bool = False) -> None:
        self._r = _native.Repository(os.fspath(path), _home(), init)

    @property
    def root(self) -> pathlib.Path:
        """The repository's top directory."""
        return pathlib.Path(self._r.root)

    def __repr__(self) -> str:
        return f"lode.Repository({str(self.root)!r})"

    def add(self, *paths: PathLike) -> Dict[str, Any]:
        """Stages files or directories (relative to the root, or absolute); all if none."""
        return json.loads(self._r.add([os.fspath(p) for p in paths] or [str(self.root)]))

    def commit(self, message: str) -> Dict[str, Any]:
        """Commits what is staged, signed by this device."""
        return json.loads(self._r.commit(message))

    def status(self) -> Dict[str, Any]:
        """Staged, unstaged and untracked changes."""
        return json.loads(self._r.status())

    def log(self, rev: Optional[str] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Commits from ``rev`` (default HEAD), newest first."""
        return json.loads(self._r.log(rev, limit))

    def meta(self, key: Optional[str] = None, *values: str, unset: bool = False) -> Any:
        """The dataset's metadata for the next commit (a dict); with ``key`` alone, that
        field; with ``key`` and values, sets it (``unset=True`` removes it)."""
        if key is not None and (values or unset):
            return json.loads(self._r.meta(key, list(values)))
        m = json.loads(self._r.meta(None, None))
        if key is None:
            return m
        if key.startswith("extra."):
            return (m.get("extra") or {}).get(key[len("extra."):])
        if key not in m:
            raise LodeError(f"unknown metadata key {key!r}")
        return m[key]
