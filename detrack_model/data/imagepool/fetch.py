"""
Fetch the pool's Debian packages and unpack the files they contribute (no installation).

A package's ``.deb`` comes from a local directory of ``.deb`` files when one matches the
pinned name and version, else from ``apt-get download NAME=VERSION`` (then ``apt-get download
NAME`` with a warning when the pinned version is gone). ``dpkg-deb -x`` unpacks it into
``CACHE/packages/NAME/``, only the files its ``include`` patterns name are kept, and
``.fetched.json`` records what was fetched, so a second run leaves it alone. A package already
unpacked in another pool (``reuse_dir``) at the pinned version is linked from there instead.
A package of Enlightenment theme archives (``archive='edje'``) is decompiled after unpacking.
"""

import concurrent.futures
from dataclasses import dataclass, field
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from detrack_model.data.imagepool.packages import check_not_reserved, PACKAGES, PoolPackage

FETCHED_FILE = '.fetched.json'
PACKAGES_DIR = 'packages'
# Downloads of a few hundred MB over a slow mirror, and unpacking them on a slow disk.
DOWNLOAD_TIMEOUT_S = 3600
EDJE_WORKERS = max(1, os.cpu_count() or 1)
Log = Callable[[str], None]


class FetchError(RuntimeError):
    """A package could not be obtained or unpacked; the message says why."""


@dataclass(frozen=True)
class FetchedPackage:
    """A package unpacked in the cache: its actual version and where it came from."""

    name: str
    version: str
    pinned: str
    source: str
    files: int
    reused: bool = False


@dataclass(frozen=True)
class SkippedPackage:
    """A package that could not be fetched, with the reason."""

    name: str
    version: str
    reason: str


@dataclass
class FetchReport:
    """What :func:`fetch_packages` did: fetched (or reused) and skipped packages, warnings."""

    fetched: List[FetchedPackage] = field(default_factory=list)
    skipped: List[SkippedPackage] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def versions(self) -> Dict[str, str]:
        """Return the unpacked version of every fetched package."""
        return {item.name: item.version for item in self.fetched}


def package_dir(cache_dir: str, name: str) -> str:
    """Return the folder package ``name`` is unpacked into."""
    return os.path.join(os.fspath(cache_dir), PACKAGES_DIR, name)


def read_fetched(directory: str) -> Optional[Dict]:
    """Return the ``.fetched.json`` record of an unpacked package folder, or None."""
    path = os.path.join(directory, FETCHED_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as stream:
        return json.load(stream)


def deb_filename(name: str, version: str, arch: str = 'all') -> str:
    """Return the file name Debian gives a package (an epoch's colon is written ``%3a``)."""
    return f'{name}_{version.replace(":", "%3a")}_{arch}.deb'


def deb_fields(path: str) -> Tuple[str, str]:
    """Return the Package and Version fields of a ``.deb`` file."""
    output = _run(['dpkg-deb', '-f', path, 'Package', 'Version'], 'dpkg-deb -f')
    fields = dict(line.split(':', 1) for line in output.splitlines() if ':' in line)
    return fields.get('Package', '').strip(), fields.get('Version', '').strip()


def find_local_deb(debs_dir: str, name: str, version: str) -> Optional[str]:
    """Return the ``.deb`` of ``name`` at ``version`` in ``debs_dir``, or None."""
    folder = glob.escape(os.fspath(debs_dir))
    conventional = glob.escape(deb_filename(name, version, 'ARCH')).replace('ARCH', '*')
    candidates = sorted(glob.glob(os.path.join(folder, conventional)))
    # Then any other file of that package: a version that was renamed or lacks the epoch.
    others = sorted(glob.glob(os.path.join(folder, glob.escape(name) + '_*.deb')))
    for path in candidates + [path for path in others if path not in candidates]:
        try:
            if deb_fields(path) == (name, version):
                return path
        except FetchError:
            continue
    return None


def apt_download(name: str, version: str, directory: str) -> Tuple[str, Optional[str]]:
    """
    Download ``name`` at ``version`` into ``directory`` with ``apt-get download``.

    Return the ``.deb`` path and a warning when only another version could be had; raise
    FetchError when neither could be downloaded.
    """
    try:
        _run(['apt-get', 'download', f'{name}={version}'], 'apt-get download',
             cwd=directory, timeout=DOWNLOAD_TIMEOUT_S)
        warning = None
    except FetchError as pinned_error:
        try:
            _run(['apt-get', 'download', name], 'apt-get download', cwd=directory,
                 timeout=DOWNLOAD_TIMEOUT_S)
        except FetchError as error:
            raise FetchError(f'{pinned_error}; without the version pin: {error}') from None
        warning = f'{name}: pinned version {version} is not available; downloaded another'
    debs = sorted(glob.glob(os.path.join(glob.escape(directory), '*.deb')))
    if not debs:
        raise FetchError(f'apt-get download {name} left no .deb file')
    return debs[0], warning


def extract(deb: str, destination: str, package: PoolPackage) -> int:
    """Unpack ``deb`` into ``destination``, keep the included files and return their count."""
    _run(['dpkg-deb', '-x', deb, destination], 'dpkg-deb -x', timeout=DOWNLOAD_TIMEOUT_S)
    _keep_included(destination, package)
    if package.archive == 'edje':
        decompile_edje(destination)
        _keep_included(destination, package)
    # Links go last: their targets may have been removed above, and a link must resolve
    # inside the tree (an absolute one would read the host's own /usr/share).
    kept = 0
    for path in _tree_files(destination):
        if os.path.islink(path) and not _inside(path, destination):
            os.unlink(path)
        else:
            kept += 1
    for folder, _, _ in sorted(os.walk(destination), reverse=True):
        if folder != destination and not os.listdir(folder):
            os.rmdir(folder)
    return kept


def decompile_edje(tree: str, workers: int = EDJE_WORKERS) -> int:
    """
    Decompile every ``NAME.edj`` below ``tree`` into a folder ``NAME`` beside it.

    The archives are removed; return how many there were. ``edje_decc`` re-encodes every
    image it holds (up to a minute for a wallpaper at a dozen sizes), so several run at once.
    """
    archives = sorted(path for path in _tree_files(tree) if path.endswith('.edj'))
    # A folder per archive: every archive names its main image img.png.
    commands = [['edje_decc', path, '-no-build-sh', '-quiet', '-output', path[:-len('.edj')]]
                for path in archives]
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda command: _run(command, 'decompiling an Enlightenment archive '
                                           '(edje_decc, Debian package libedje-bin)',
                                           timeout=DOWNLOAD_TIMEOUT_S), commands))
    for path in archives:
        os.unlink(path)
    return len(archives)


def fetch_packages(cache_dir: str, packages: Sequence[PoolPackage] = PACKAGES,
                   debs_dir: Optional[str] = None, log: Log = print,
                   reuse_dir: Optional[str] = None) -> FetchReport:
    """
    Fetch and unpack every package of ``packages`` into ``cache_dir/packages/``.

    A package that cannot be downloaded is skipped with a message; one already unpacked at
    the pinned version with the same ``include`` patterns, in ``cache_dir`` or else in the
    pool ``reuse_dir``, is reused as it is (hard links from the other pool where the file
    system allows, else copies).
    """
    check_not_reserved(tuple(package.name for package in packages))
    cache_dir = os.fspath(cache_dir)
    os.makedirs(os.path.join(cache_dir, PACKAGES_DIR), exist_ok=True)
    report = FetchReport()
    for package in packages:
        previous = read_fetched(package_dir(cache_dir, package.name))
        if reuse_dir and not _is_current(previous, package):
            previous = _link_from(os.fspath(reuse_dir), cache_dir, package, log) or previous
        if _is_current(previous, package):
            log(f'{package.name} {previous["version"]}: already unpacked')
            if previous['package'] != package.to_dict():
                # Same files, new naming rules (groups, categories): the indexer reads them
                # from here.
                _write_record(package_dir(cache_dir, package.name),
                              dict(previous, package=package.to_dict()))
            report.fetched.append(FetchedPackage(package.name, previous['version'],
                                                 package.version, previous['source'],
                                                 previous['files'], reused=True))
            continue
        try:
            fetched, warning = _fetch_one(cache_dir, package, debs_dir)
        except FetchError as error:
            log(f'{package.name} {package.version}: skipped: {error}')
            report.skipped.append(SkippedPackage(package.name, package.version, str(error)))
            continue
        if warning:
            log(f'warning: {warning} ({fetched.version})')
            report.warnings.append(f'{warning} ({fetched.version})')
        log(f'{package.name} {fetched.version}: {fetched.files} files from {fetched.source}')
        report.fetched.append(fetched)
    return report


def _keep_included(tree: str, package: PoolPackage) -> None:
    for path in _tree_files(tree):
        if not package.matches(os.path.relpath(path, tree).replace(os.sep, '/')):
            os.unlink(path)


def _fetch_one(cache_dir: str, package: PoolPackage,
               debs_dir: Optional[str]) -> Tuple[FetchedPackage, Optional[str]]:
    root = os.path.join(cache_dir, PACKAGES_DIR)
    with tempfile.TemporaryDirectory(prefix=f'.{package.name}-', dir=root) as scratch:
        deb = find_local_deb(debs_dir, package.name, package.version) if debs_dir else None
        source, warning = deb, None
        if deb is None:
            deb, warning = apt_download(package.name, package.version, scratch)
            source = 'apt-get download'
        name, version = deb_fields(deb)
        if name != package.name:
            raise FetchError(f'{deb} holds package {name!r}, not {package.name!r}')
        # Unpack next to the final folder and swap it in at the end: an interrupted run leaves
        # no half-filled folder that looks fetched.
        staging = os.path.join(scratch, 'tree')
        files = extract(deb, staging, package)
        fetched = FetchedPackage(package.name, version, package.version, source, files)
        _write_fetched(staging, fetched, package)
        _swap_in(staging, package_dir(cache_dir, package.name))
    return fetched, warning


def _swap_in(staging: str, destination: str) -> None:
    """Replace ``destination`` by the finished ``staging`` folder (same file system)."""
    if os.path.lexists(destination):
        shutil.rmtree(destination)
    os.rename(staging, destination)


def _link_from(other_pool: str, cache_dir: str, package: PoolPackage,
               log: Log) -> Optional[Dict]:
    """Put another pool's unpacked copy of ``package`` here; return its record or None."""
    source = package_dir(other_pool, package.name)
    record = read_fetched(source)
    if not _is_current(record, package) or os.path.samefile(other_pool, cache_dir):
        return None
    root = os.path.join(cache_dir, PACKAGES_DIR)
    with tempfile.TemporaryDirectory(prefix=f'.{package.name}-', dir=root) as scratch:
        staging = os.path.join(scratch, 'tree')
        shutil.copytree(source, staging, symlinks=True, copy_function=_link_or_copy)
        _swap_in(staging, package_dir(cache_dir, package.name))
    log(f'{package.name} {record["version"]}: taken from {other_pool}')
    return record


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _is_current(previous: Optional[Dict], package: PoolPackage) -> bool:
    return (previous is not None and previous.get('pinned') == package.version
            and previous.get('package', {}).get('include') == list(package.include))


def _write_fetched(directory: str, fetched: FetchedPackage, package: PoolPackage) -> None:
    _write_record(directory, {'name': fetched.name, 'version': fetched.version,
                              'pinned': fetched.pinned, 'source': fetched.source,
                              'files': fetched.files,
                              'fetched_at': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                              'package': package.to_dict()})


def _write_record(directory: str, record: Dict) -> None:
    path = os.path.join(directory, FETCHED_FILE)
    with open(path + '.tmp', 'w', encoding='utf-8') as stream:
        json.dump(record, stream, indent=1)
    os.replace(path + '.tmp', path)


def _inside(path: str, root: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return os.path.isfile(real) and os.path.commonpath([real, top]) == top


def _tree_files(root: str) -> List[str]:
    paths = []
    for folder, directories, files in os.walk(root):
        links = [name for name in directories if os.path.islink(os.path.join(folder, name))]
        paths += [os.path.join(folder, name) for name in files + links]
    return paths


def _run(command: List[str], what: str, cwd: Optional[str] = None,
         timeout: Optional[float] = 600) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except FileNotFoundError:
        raise FetchError(f'{command[0]} not found (needed for {what})') from None
    except subprocess.TimeoutExpired:
        raise FetchError(f'{what} timed out after {timeout:.0f} s') from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines()
                 if line.strip() and not line.startswith('W: ')]
        detail = lines[-1].strip() if lines else f'exit status {result.returncode}'
        raise FetchError(f'{" ".join(command)} failed: {detail}')
    return result.stdout
