"""Load owmeta-core data sources through lode.

A data source records where its files live as a lode referral URI
(``lode://DATASET-ID/PATH?rev=REV``) or as an address/capability ticket followed by a path
(``lode1… tables/neurons.csv``). ``LodeDirLoader`` fetches those files with ``lode get``:
every byte is verified against its BLAKE3 id before it lands, and the files appear under the
loader's ``base_directory`` only once they are complete.

    from owmeta_core.datasource_loader import LoadFailed
    from lode_loader import LodeDataSource, LodeDirLoader

    ds = LodeDataSource(ident='http://example.org/connectome-2026',
                        lode_uri='lode://5f2c…e1/tables/connectome.csv?rev=v1')
    loader = LodeDirLoader('/data/owmeta-files')
    path = loader(ds)          # a directory holding tables/connectome.csv

Set ``lode`` to the executable (default: ``lode`` on PATH). The environment of the calling
process is passed on, so ``LODE_HOME`` and the network settings apply.
"""
import hashlib
import os
import shutil
import subprocess

from owmeta_core.datasource import DataSource, Informational
from owmeta_core.datasource_loader import DataSourceDirLoader, LoadFailed


class LodeDataSource(DataSource):
    '''A data source whose files are published with lode.'''

    class_context = 'http://openworm.org/schema/lode'

    lode_uri = Informational(
        display_name='lode URI',
        description='lode://DATASET-ID/PATH?rev=REV, or a lode ticket followed by a path')


class LodeDirLoader(DataSourceDirLoader):
    '''Fetches a data source's files with ``lode get`` into ``base_directory``.'''

    def __init__(self, base_directory, lode='lode', ticket=None):
        super().__init__(base_directory)
        self.lode = lode
        # A capability ticket (lodecap1…) for restricted datasets, if needed.
        self.ticket = ticket

    def _uri(self, data_source):
        prop = getattr(data_source, 'lode_uri', None)
        if prop is None:
            return None
        value = prop.onedef()
        return str(value) if value else None

    def can_load(self, data_source):
        return self._uri(data_source) is not None

    def load(self, data_source):
        uri = self._uri(data_source)
        if uri is None:
            raise LoadFailed(data_source, self, 'the data source has no lode_uri')
        name = hashlib.sha256(str(data_source.identifier).encode()).hexdigest()[:24]
        dest = os.path.join(self.base_directory, name)
        partial = dest + '.partial'
        shutil.rmtree(partial, ignore_errors=True)
        if uri.startswith('lode://'):
            args = [self.lode, 'get', uri]
        else:
            ticket, _, paths = uri.partition(' ')
            args = [self.lode, 'get', ticket] + paths.split()
        args += ['--to', partial, '--quiet']
        if self.ticket:
            args += ['--ticket', self.ticket]
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeError('lode could not load {}: {}'.format(uri, done.stderr.strip()))
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(partial, dest)
        return name
