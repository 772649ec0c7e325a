"""Type stubs of the extension module (the public API is in `lode/__init__.py`)."""

from typing import Any, Callable, List, Optional, Tuple

__version__: str

class LodeError(Exception):
    hint: Optional[str]

class NotAuthorized(LodeError): ...
class VerificationError(LodeError): ...
class PeerUnreachable(LodeError): ...
class NotFound(LodeError): ...

class Reader:
    size: int
    id: str
    cached: bool
    def read(self, n: int = -1) -> bytes: ...
    def close(self) -> None: ...

class Repository:
    root: str
    def __init__(self, path: str, home: str, init: bool = False) -> None: ...
    def add(self, paths: List[str]) -> str: ...
    def commit(self, message: str) -> str: ...
    def status(self) -> str: ...
    def log(self, rev: Optional[str] = None, limit: Optional[int] = None) -> str: ...
    def meta(self, key: Optional[str] = None, values: Optional[List[str]] = None) -> str: ...

def get(
    source: str,
    paths: List[str],
    dest: str,
    rev: Optional[str],
    ticket: Optional[str],
    force: bool,
    refresh: bool,
    home: str,
    cache: str,
    relay: str,
    discovery: bool,
    bind: Optional[str],
    progress: Optional[Callable[[str, int, int], Any]] = None,
) -> Tuple[List[str], bool]: ...
def ls(
    source: str,
    rev: Optional[str],
    ticket: Optional[str],
    refresh: bool,
    home: str,
    cache: str,
    relay: str,
    discovery: bool,
    bind: Optional[str],
) -> Tuple[str, List[Tuple[str, str, int, str]], bool]: ...
def open(
    source: str,
    path: Optional[str],
    rev: Optional[str],
    ticket: Optional[str],
    refresh: bool,
    home: str,
    cache: str,
    relay: str,
    discovery: bool,
    bind: Optional[str],
) -> Reader: ...
def clone(
    source: str,
    dest: str,
    ticket: Optional[str],
    link: bool,
    home: str,
    relay: str,
    discovery: bool,
    bind: Optional[str],
    progress: Optional[Callable[[str, int, int], Any]] = None,
    lazy: bool = False,
) -> str: ...
def uri(ticket: str, path: Optional[str] = None, rev: Optional[str] = None) -> str: ...
def cli_main(argv: List[str]) -> int: ...
