"""Loads one data source through LodeDirLoader and prints the loaded directory.

Usage: python check_loader.py LODE_BIN BASE_DIR URI
Used by tests/cli/owmeta.rs; also a minimal example of the loader in use.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lode_loader import LodeDataSource, LodeDirLoader  # noqa: E402

lode, base, uri = sys.argv[1:4]
ds = LodeDataSource(ident='http://example.org/lode-test-source', lode_uri=uri)
loader = LodeDirLoader(base, lode=lode)
assert loader.can_load(ds)
print(loader(ds))
