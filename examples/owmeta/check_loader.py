"""Loads one data source through lode.owmeta.LodeDirLoader and prints the loaded directory.

Usage: python check_loader.py BASE_DIR URI
(`pip install lode-data[owmeta]` first.) python/tests/test_owmeta.py runs it; it is also the
smallest use of the loader.
"""
import sys

from lode.owmeta import LodeDataSource, LodeDirLoader

base, uri = sys.argv[1:3]
ds = LodeDataSource(ident='http://example.org/lode-test-source', lode_uri=uri)
loader = LodeDirLoader(base)
assert loader.can_load(ds)
print(loader(ds))
