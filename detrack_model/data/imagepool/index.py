"""
Turn the unpacked packages into normalised pool images and ``index.json``.

Objects are PNGs with a real alpha mask, cropped to the mask (plus a small margin) and scaled
down to at most :data:`OBJECT_MAX_SIDE` pixels, stored as BGRA PNG under
``pool/objects/<package>/``. Backgrounds are composited over a plain sky colour where they
are transparent, scaled down to at most :data:`BACKGROUND_MAX_SIDE` pixels and stored as JPEG
under ``pool/backgrounds/<package>/``. Stellarium's landscapes are panoramas cut into slices:
the side textures of a landscape are joined into one strip, most of the empty sky above the
ground is cut off and the strip is cut into 4:3 windows.

Byte-identical sources are kept once. A rebuild reuses the images of unchanged sources.
"""

import concurrent.futures
import configparser
import glob
import hashlib
import json
import multiprocessing
import os
import struct
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import cv2
from detrack_model.data.imagepool.fetch import PACKAGES_DIR, read_fetched
from detrack_model.data.imagepool.packages import check_not_reserved, PoolPackage
import numpy as np

INDEX_FILE = 'index.json'
POOL_DIR = 'pool'
# Bump when the normalisation below changes: a rebuild then redoes every image.
INDEX_VERSION = 1
OBJECT_MAX_SIDE = 256
OBJECT_MARGIN = 2
OBJECT_MIN_SIDE = 24
# Opaque fraction of the object's bounding box: below, line art, specks or a faint glow;
# above, a rectangle.
OBJECT_FILL_RANGE = (0.05, 0.97)
# Faint halos and compression noise in the alpha channel must not widen the crop.
ALPHA_VISIBLE = 16
# A few clip-art PNGs are 10000-30000 px tall: decoding one takes gigabytes.
MAX_SOURCE_PIXELS = 40_000_000
BACKGROUND_MAX_SIDE = 1280
BACKGROUND_MIN_SIZE = (320, 240)
BACKGROUND_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp')
JPEG_QUALITY = 92
# A clear-sky blue: Stellarium's skies are transparent, and a plain matte shows nothing else.
MATTE_BGR = (235, 206, 135)
# One size per wallpaper: the largest landscape image up to this width (scaled down anyway).
PREFERRED_MAX_WIDTH = 2000
PANORAMA_ASPECT = 4.0 / 3.0
Log = Callable[[str], None]
Task = Dict[str, Any]


class _Skipped(Exception):
    """An image left out of the pool; ``args[0]`` is the reason."""


def build_index(cache_dir: str, log: Log = print, packages: Optional[Iterable[str]] = None,
                workers: int = 2) -> Dict[str, Any]:
    """
    Normalise the unpacked packages of ``cache_dir`` and write ``cache_dir/index.json``.

    ``packages`` restricts the index to these package names (default: every unpacked one);
    ``workers`` processes decode images in parallel (1: in this process). Return the index.
    """
    cache_dir = os.path.abspath(os.fspath(cache_dir))
    unpacked = _unpacked_packages(cache_dir, None if packages is None else set(packages))
    check_not_reserved(tuple(unpacked))
    previous = _previous_results(cache_dir)
    seen: Dict[Tuple[str, str], str] = {}
    tasks: List[Task] = []
    rejected: List[Dict[str, str]] = []
    for package, tree in unpacked.values():
        for task in _package_tasks(cache_dir, package, tree, rejected):
            key = (package.role, task['sha1'])
            if key in seen:
                rejected.append(_rejection(task, f'duplicate of {seen[key]}'))
            else:
                seen[key] = task['id']
                tasks.append(task)
    results = _run_tasks(tasks, previous, workers)
    index = _assemble(unpacked, tasks, results, rejected)
    _remove_stale(cache_dir, index)
    _write_json(os.path.join(cache_dir, INDEX_FILE), index)
    for name, summary in index['packages'].items():
        log(_summary_line(name, summary))
    return index


def read_index(cache_dir: str) -> Dict[str, Any]:
    """Return ``cache_dir/index.json``."""
    with open(os.path.join(os.fspath(cache_dir), INDEX_FILE), encoding='utf-8') as stream:
        return json.load(stream)


def image_size(path: str) -> Tuple[int, int]:
    """Return (width, height) of an image from its PNG or JPEG header (decoding other kinds)."""
    with open(path, 'rb') as stream:
        head = stream.read(32)
        if head[:8] == b'\x89PNG\r\n\x1a\n':
            return struct.unpack('>II', head[16:24])
        if head[:2] == b'\xff\xd8':
            size = _jpeg_size(stream)
            if size is not None:
                return size
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise _Skipped('unreadable')
    return image.shape[1], image.shape[0]


# Collecting the work.

def _unpacked_packages(cache_dir: str,
                       names: Optional[set]) -> Dict[str, Tuple[PoolPackage, str]]:
    found = {}
    for tree in sorted(glob.glob(os.path.join(glob.escape(cache_dir), PACKAGES_DIR, '*'))):
        record = read_fetched(tree)
        if record is None or (names is not None and record['name'] not in names):
            continue
        package = PoolPackage.from_dict(record['package'])
        found[package.name] = (package, tree)
    return found


def _package_tasks(cache_dir: str, package: PoolPackage, tree: str,
                   rejected: List[Dict[str, str]]) -> List[Task]:
    if package.layout == 'stellarium':
        return _stellarium_tasks(cache_dir, package, tree, rejected)
    extensions = ('.png',) if package.role == 'objects' else BACKGROUND_EXTENSIONS
    paths = [path for path in _included_files(package, tree)
             if os.path.splitext(path)[1].lower() in extensions]
    if package.one_per_group:
        paths = _one_per_group(package, tree, paths, rejected)
    # Real files before links to them, so a duplicate keeps the real file's name.
    tasks = [_file_task(cache_dir, package, tree, path)
             for path in sorted(paths, key=lambda path: (os.path.islink(path), path))]
    used = set()
    for task in tasks:
        if task['file'] in used:
            # name.jpg and name.png in one folder: keep both apart.
            stem, extension = os.path.splitext(task['file'])
            task['file'] = stem + '-' + os.path.splitext(task['id'])[1].lstrip('.') + extension
        used.add(task['file'])
    return tasks


def _included_files(package: PoolPackage, tree: str) -> List[str]:
    paths = []
    for folder, directories, files in os.walk(tree):
        directories.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if package.matches(_tree_path(path, tree)) and os.path.isfile(path):
                paths.append(path)
    return paths


def _one_per_group(package: PoolPackage, tree: str, paths: List[str],
                   rejected: List[Dict[str, str]]) -> List[str]:
    groups: Dict[str, List[str]] = {}
    for path in paths:
        groups.setdefault(package.group_of(package.relative(_tree_path(path, tree))),
                          []).append(path)
    chosen = []
    for members in groups.values():
        best = _pick_size(members)
        chosen.append(best)
        for path in members:
            if path != best:
                relative = package.relative(_tree_path(path, tree))
                rejected.append({'id': f'{package.name}/{relative}', 'sha1': '',
                                 'reason': 'other size of the same picture'})
    return sorted(chosen)


def _pick_size(paths: List[str]) -> str:
    # Links to one file are one size, named by the file itself; the header gives the size
    # without decoding.
    files: Dict[str, str] = {}
    for path in sorted(paths, key=lambda path: (os.path.islink(path), path)):
        files.setdefault(os.path.realpath(path), path)
    sizes = {}
    for path in files.values():
        try:
            sizes[path] = image_size(path)
        except (_Skipped, OSError, struct.error):
            continue
    if not sizes:
        return paths[0]
    landscape = [path for path, (w, h) in sizes.items() if w >= h] or list(sizes)
    fitting = [path for path in landscape if sizes[path][0] <= PREFERRED_MAX_WIDTH]
    area = {path: sizes[path][0] * sizes[path][1] for path in sizes}
    if fitting:
        return max(fitting, key=lambda path: (area[path], path))
    return min(landscape, key=lambda path: (area[path], path))


def _file_task(cache_dir: str, package: PoolPackage, tree: str, path: str) -> Task:
    relative = package.relative(_tree_path(path, tree))
    stem = os.path.splitext(relative)[0]
    extension = '.png' if package.role == 'objects' else '.jpg'
    task = {'kind': 'object' if package.role == 'objects' else 'background',
            'id': f'{package.name}/{relative}', 'package': package.name,
            'sources': [path], 'sha1': _file_sha1(path), 'cache_dir': cache_dir,
            'file': '/'.join((POOL_DIR, package.role, package.name, stem + extension)),
            'group': package.group_of(relative)}
    if package.role == 'objects':
        task.update(category=package.category_of(relative), photo=package.is_photo(relative))
    return task


def _stellarium_tasks(cache_dir: str, package: PoolPackage, tree: str,
                      rejected: List[Dict[str, str]]) -> List[Task]:
    tasks = []
    root = os.path.join(tree, package.root)
    for ini in sorted(glob.glob(os.path.join(glob.escape(root), '*', 'landscape.ini'))):
        folder = os.path.dirname(ini)
        name = os.path.basename(folder)
        try:
            panoramas, singles = _landscape_textures(ini)
        except (configparser.Error, KeyError, ValueError) as error:
            rejected.append({'id': f'{package.name}/{name}', 'sha1': '',
                             'reason': f'landscape.ini not understood: {error}'})
            continue
        group = package.group_of(f'{name}/landscape.ini')
        paths = [os.path.join(folder, texture) for texture in panoramas]
        if paths and all(os.path.isfile(path) for path in paths):
            sha1 = hashlib.sha1(''.join(_file_sha1(path) for path in paths).encode())
            tasks.append({'kind': 'panorama', 'id': f'{package.name}/{name}/panorama',
                          'package': package.name, 'sources': paths,
                          'sha1': sha1.hexdigest(), 'cache_dir': cache_dir, 'group': group,
                          'file': '/'.join((POOL_DIR, package.role, package.name, name,
                                            'panorama'))})
        for texture in singles:
            path = os.path.join(folder, texture)
            if os.path.isfile(path):
                tasks.append(_file_task(cache_dir, package, tree, path))
    return tasks


def _landscape_textures(ini: str) -> Tuple[List[str], List[str]]:
    """Return the textures forming the panorama, in order, and those used as they are."""
    config = configparser.ConfigParser(interpolation=None, strict=False)
    with open(ini, encoding='utf-8', errors='replace') as stream:
        config.read_file(stream)
    landscape = config['landscape']
    kind = landscape.get('type', '').strip()
    if kind == 'old_style':
        sides = [landscape[f'side{i}'].split(':')[0].strip()
                 for i in range(int(landscape['nbside']))]
        ground = [landscape['groundtex'].strip()] if 'groundtex' in landscape else []
        return [landscape[side].strip() for side in sides], ground
    if kind == 'spherical':
        return [landscape['maptex'].strip()], []
    if kind == 'fisheye':
        # A circular fish-eye picture: usable as it is, not as a strip.
        return [], [landscape['maptex'].strip()]
    return [], []


# Running it.

def _run_tasks(tasks: List[Task], previous: Dict[str, Any],
               workers: int) -> Dict[str, Tuple[List[Dict], Optional[str]]]:
    results: Dict[str, Tuple[List[Dict], Optional[str]]] = {}
    todo = []
    for task in tasks:
        reused = _reuse(task, previous)
        if reused is None:
            todo.append(task)
        else:
            results[task['id']] = reused
    if workers > 1 and len(todo) > 1:
        # spawn, not fork: a forked child inherits OpenCV's (or PyTorch's) thread pool in
        # whatever state the caller left it and can hang on its first parallel call.
        context = multiprocessing.get_context('spawn')
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                    initializer=_init_worker) as pool:
            outcomes = list(pool.map(_run_task, todo, chunksize=8))
    else:
        outcomes = [_run_task(task) for task in todo]
    for task, outcome in zip(todo, outcomes):
        results[task['id']] = outcome
    return results


def _init_worker() -> None:
    # Each worker is one of a few processes: OpenCV's own threads would oversubscribe.
    cv2.setNumThreads(1)


def _run_task(task: Task) -> Tuple[List[Dict], Optional[str]]:
    try:
        if task['kind'] == 'object':
            return [_normalise_object(task)], None
        if task['kind'] == 'panorama':
            return _normalise_panorama(task), None
        return [_write_background(task, _read(task['sources'][0]), task['id'],
                                  task['file'])], None
    except _Skipped as skipped:
        return [], str(skipped.args[0])
    except (cv2.error, OSError, ValueError) as error:
        return [], f'unreadable: {error}'.splitlines()[0]


def _normalise_object(task: Task) -> Dict[str, Any]:
    image = _read(task['sources'][0])
    if image.ndim != 3 or image.shape[2] != 4 or image[:, :, 3].min() == 255:
        raise _Skipped('no alpha')
    visible = image[:, :, 3] >= ALPHA_VISIBLE
    rows, columns = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if rows.size == 0:
        raise _Skipped('empty')
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    if min(bottom - top, right - left) < OBJECT_MIN_SIDE:
        raise _Skipped(f'smaller than {OBJECT_MIN_SIDE} px')
    # Opaque pixels, not mean alpha: soft glows and shadows are no object to track.
    fill = float((image[top:bottom, left:right, 3] >= 128).mean())
    if fill < OBJECT_FILL_RANGE[0]:
        raise _Skipped('alpha too sparse')
    if fill > OBJECT_FILL_RANGE[1]:
        raise _Skipped('alpha nearly opaque')
    height, width = image.shape[:2]
    crop = image[max(0, top - OBJECT_MARGIN):min(height, bottom + OBJECT_MARGIN),
                 max(0, left - OBJECT_MARGIN):min(width, right + OBJECT_MARGIN)]
    crop = _fit_bgra(crop, OBJECT_MAX_SIDE)
    _write(task['cache_dir'], task['file'], crop, [])
    return {'id': task['id'], 'package': task['package'], 'file': task['file'],
            'category': task['category'], 'group': task['group'], 'photo': task['photo'],
            'width': int(crop.shape[1]), 'height': int(crop.shape[0]),
            'alpha_fraction': round(fill, 4), 'sha1': task['sha1'], 'source': task['id']}


def _normalise_panorama(task: Task) -> List[Dict[str, Any]]:
    tiles = [_as_bgra(_read(path)) for path in task['sources']]
    height = max(tile.shape[0] for tile in tiles)
    strip = np.hstack([tile if tile.shape[0] == height else
                       cv2.resize(tile, (round(tile.shape[1] * height / tile.shape[0]), height),
                                  interpolation=cv2.INTER_LINEAR) for tile in tiles])
    top, bottom = _ground_band(strip[:, :, 3])
    strip = strip[top:bottom]
    window = min(strip.shape[1], round(strip.shape[0] * PANORAMA_ASPECT))
    count = max(1, round(strip.shape[1] / window))
    offsets = np.linspace(0, strip.shape[1] - window, count).round().astype(int)
    return [_write_background(task, strip[:, x:x + window], f'{task["id"]}-{i}',
                              f'{task["file"]}-{i}.jpg') for i, x in enumerate(offsets)]


def _ground_band(alpha: np.ndarray) -> Tuple[int, int]:
    """Return the rows to keep of a panorama: the ground and a third as much sky above it."""
    height = alpha.shape[0]
    ground = np.flatnonzero((alpha >= 128).mean(axis=1) >= 0.5)
    if ground.size == 0:
        return 0, height
    bottom = int(ground[-1]) + 1
    top = max(0, int(ground[0]) - (bottom - int(ground[0])) // 3)
    # Low strips keep more sky rather than fall below the minimum background height.
    top = max(0, min(top, bottom - BACKGROUND_MIN_SIZE[1]))
    return top, max(bottom, min(height, top + BACKGROUND_MIN_SIZE[1]))


def _write_background(task: Task, image: np.ndarray, record_id: str,
                      file: str) -> Dict[str, Any]:
    image = _fit(_matte(image), BACKGROUND_MAX_SIDE)
    height, width = image.shape[:2]
    if max(width, height) < BACKGROUND_MIN_SIZE[0] or min(width, height) < BACKGROUND_MIN_SIZE[1]:
        raise _Skipped(f'smaller than {BACKGROUND_MIN_SIZE[0]}x{BACKGROUND_MIN_SIZE[1]}')
    _write(task['cache_dir'], file, image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return {'id': record_id, 'package': task['package'], 'file': file, 'group': task['group'],
            'width': int(width), 'height': int(height), 'sha1': task['sha1'],
            'source': task['id']}


# Image helpers.

def _read(path: str) -> np.ndarray:
    width, height = image_size(path)
    if width * height > MAX_SOURCE_PIXELS:
        raise _Skipped(f'larger than {MAX_SOURCE_PIXELS / 1e6:.0f} megapixels')
    # JPEGs have no alpha; reading them as colour applies their EXIF orientation.
    jpeg = os.path.splitext(path)[1].lower() in ('.jpg', '.jpeg')
    image = cv2.imread(path, cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED)
    if image is None:
        raise _Skipped('unreadable')
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise _Skipped(f'unsupported pixel type {image.dtype}')
    return image


def _as_bgra(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return image


def _matte(image: np.ndarray) -> np.ndarray:
    image = _as_bgra(image)
    alpha = image[:, :, 3:4].astype(np.float32) / 255.0
    matte = np.array(MATTE_BGR, np.float32)
    return (image[:, :, :3] * alpha + matte * (1.0 - alpha) + 0.5).astype(np.uint8)


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _fit_bgra(image: np.ndarray, max_side: int) -> np.ndarray:
    """Scale a BGRA image down with premultiplied colour, so no dark fringe leaks in."""
    if max(image.shape[:2]) <= max_side:
        return image
    # colour * alpha and alpha * 255 are exact in 16 bits: half the memory of float32 on
    # sources of tens of megapixels.
    alpha = image[:, :, 3:4].astype(np.uint16)
    premultiplied = np.concatenate([image[:, :, :3] * alpha, alpha * 255], axis=2)
    small = _fit(premultiplied, max_side).astype(np.float32)
    alpha = small[:, :, 3:4]
    colour = small[:, :, :3] * (255.0 / np.maximum(alpha, 1.0))
    return np.clip(np.concatenate([colour, alpha / 255.0], axis=2) + 0.5, 0,
                   255).astype(np.uint8)


def _write(cache_dir: str, file: str, image: np.ndarray, params: List[int]) -> None:
    path = os.path.join(cache_dir, file)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, image, params):
        raise OSError(f'cannot write {path}')


def _jpeg_size(stream: Any) -> Optional[Tuple[int, int]]:
    stream.seek(2)
    while True:
        marker = stream.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
            continue
        length = struct.unpack('>H', stream.read(2))[0]
        # Start-of-frame markers (not DHT, JPG, DAC) carry the size.
        if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack('>xHH', stream.read(5))
            return width, height
        stream.seek(length - 2, os.SEEK_CUR)


# Bookkeeping.

def _tree_path(path: str, tree: str) -> str:
    return os.path.relpath(path, tree).replace(os.sep, '/')


def _file_sha1(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _rejection(task: Task, reason: str) -> Dict[str, str]:
    return {'id': task['id'], 'sha1': task['sha1'], 'reason': reason}


def _previous_results(cache_dir: str) -> Dict[str, Any]:
    try:
        index = read_index(cache_dir)
    except (OSError, ValueError):
        return {}
    if index.get('version') != INDEX_VERSION:
        return {}
    records: Dict[Tuple[str, str], List[Dict]] = {}
    for record in index.get('objects', []) + index.get('backgrounds', []):
        records.setdefault((record['source'], record['sha1']), []).append(record)
    reasons = {(item['id'], item['sha1']): item['reason'] for item in index.get('rejected', [])
               if item.get('sha1')}
    return {'cache_dir': cache_dir, 'records': records, 'reasons': reasons}


def _reuse(task: Task, previous: Dict[str, Any]) -> Optional[Tuple[List[Dict], Optional[str]]]:
    if not previous:
        return None
    key = (task['id'], task['sha1'])
    if key in previous['reasons'] and not previous['reasons'][key].startswith('duplicate'):
        return [], previous['reasons'][key]
    records = previous['records'].get(key)
    if not records or not all(os.path.isfile(os.path.join(previous['cache_dir'], r['file']))
                              for r in records):
        return None
    # The package rules may have changed since: names come from the task, pixels are reused.
    fields = {name: task[name] for name in ('package', 'group', 'category', 'photo')
              if name in task}
    return [dict(record, **fields) for record in records], None


def _assemble(unpacked: Dict[str, Tuple[PoolPackage, str]], tasks: List[Task],
              results: Dict[str, Tuple[List[Dict], Optional[str]]],
              rejected: List[Dict[str, str]]) -> Dict[str, Any]:
    index: Dict[str, Any] = {'version': INDEX_VERSION,
                             'built_at': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                             'packages': {}, 'objects': [], 'backgrounds': [], 'rejected': []}
    for task in tasks:
        records, reason = results[task['id']]
        if reason is not None:
            rejected.append(_rejection(task, reason))
        index['objects' if task['kind'] == 'object' else 'backgrounds'].extend(records)
    index['rejected'] = sorted(rejected, key=lambda item: item['id'])
    for name, (package, tree) in unpacked.items():
        index['packages'][name] = _package_summary(package, tree, index)
    return index


def _package_summary(package: PoolPackage, tree: str, index: Dict[str, Any]) -> Dict[str, Any]:
    records = [r for r in index[package.role] if r['package'] == package.name]
    skipped: Dict[str, int] = {}
    for item in index['rejected']:
        if item['id'].startswith(package.name + '/'):
            reason = 'duplicate' if item['reason'].startswith('duplicate') else item['reason']
            skipped[reason] = skipped.get(reason, 0) + 1
    summary = {'version': read_fetched(tree)['version'], 'role': package.role,
               'kept': len(records), 'groups': len({r['group'] for r in records}),
               'skipped': dict(sorted(skipped.items()))}
    if package.role == 'objects':
        summary['photo'] = sum(1 for r in records if r['photo'])
    return summary


def _summary_line(name: str, summary: Dict[str, Any]) -> str:
    photo = f' ({summary["photo"]} photographs)' if 'photo' in summary else ''
    skipped = ', '.join(f'{reason} {count}' for reason, count in summary['skipped'].items())
    return (f'{name} {summary["version"]}: {summary["kept"]} {summary["role"]}{photo} in '
            f'{summary["groups"]} groups' + (f'; skipped: {skipped}' if skipped else ''))


def _remove_stale(cache_dir: str, index: Dict[str, Any]) -> None:
    keep = {os.path.normpath(os.path.join(cache_dir, record['file']))
            for record in index['objects'] + index['backgrounds']}
    for folder, _, files in sorted(os.walk(os.path.join(cache_dir, POOL_DIR)), reverse=True):
        for name in files:
            path = os.path.normpath(os.path.join(folder, name))
            if path not in keep:
                os.unlink(path)
        if not os.listdir(folder):
            os.rmdir(folder)


def _write_json(path: str, data: Any) -> None:
    temporary = path + '.tmp'
    with open(temporary, 'w', encoding='utf-8') as stream:
        json.dump(data, stream, indent=1, sort_keys=False)
        stream.write('\n')
    os.replace(temporary, path)
