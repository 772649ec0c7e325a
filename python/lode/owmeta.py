"""owmeta-core (PyOpenWorm) data sources loaded through lode (``pip install lode-data[owmeta]``).

A :class:`LodeDataSource` records where its files live in ``lode_uri``: a ``lode://`` URI
(``lode://DATASET-ID/PATH?rev=REV``; made with :func:`lode.uri`, it also carries its
providers, ``&provider=lode1…``, and resolves on a machine that has never used a ticket), or
an address/capability ticket followed by paths (``lode1… tables``).
:class:`LodeDirLoader` (a ``DataSourceDirLoader``) fetches those files through the lode
cache: every byte verified against its BLAKE3 id, a second load a lookup, the directory
appearing under ``base_directory`` only once complete; failures raise owmeta's
``LoadFailed`` with lode's message and hint::

    from lode.owmeta import LodeDataSource, LodeDirLoader
    ds = LodeDataSource(ident='http://example.org/connectome-2026',
                        lode_uri=lode.uri(ticket, 'tables/connectome.csv', rev='v1'))
    path = LodeDirLoader('/data/owmeta-files')(ds)   # a directory holding tables/…
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any, Optional

from owmeta_core.datasource import DataSource, Informational
from owmeta_core.datasource_loader import DataSourceDirLoader, LoadFailed

import lode

__all__ = ["LodeDataSource", "LodeDirLoader"]


class LodeDataSource(DataSource):
    """A data source whose files are published with lode."""

    class_context = "http://openworm.org/schema/lode"

    lode_uri = Informational(
        display_name="lode URI",
        description="lode://DATASET-ID/PATH?rev=REV[&provider=TICKET], or a lode ticket followed by paths",
    )


class LodeDirLoader(DataSourceDirLoader):
    """Loads a :class:`LodeDataSource`'s files into ``base_directory`` through lode.

    ``ticket`` is a capability ticket (``lodecap1…``) for restricted datasets; other keyword
    arguments (``cache_dir``, ``relay``, ``discovery``, ``bind``) go to :func:`lode.get`.
    """

    def __init__(self, base_directory: str, ticket: Optional[str] = None, **options: Any) -> None:
        super().__init__(base_directory)
        self.ticket = ticket
        self.options = options

    def _uri(self, data_source: Any) -> Optional[str]:
        prop = getattr(data_source, "lode_uri", None)
        if prop is None:
            return None
        value = prop.onedef()
        return str(value) if value else None

    def can_load(self, data_source: Any) -> bool:
        return self._uri(data_source) is not None

    def load(self, data_source: Any) -> str:
        uri = self._uri(data_source)
        if uri is None:
            raise LoadFailed(data_source, self, "the data source has no lode_uri")
        name = hashlib.sha256(str(data_source.identifier).encode()).hexdigest()[:24]
        dest = os.path.join(self.base_directory, name)
        partial = dest + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        if uri.startswith("lode://"):
            source, paths = uri, []
        else:
            source, _, rest = uri.partition(" ")
            paths = rest.split() or [""]
        try:
            lode.get(source, *paths, dest=partial, ticket=self.ticket, **self.options)
        except lode.LodeError as e:
            shutil.rmtree(partial, ignore_errors=True)
            hint = f" (hint: {e.hint})" if getattr(e, "hint", None) else ""
            raise LoadFailed(data_source, self, f"lode could not load {uri}: {e}{hint}") from e
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(partial, dest)
        return name
