"""Tests of the image pool: fetching .deb packages, normalising their images, the splits."""

import dataclasses
import json
import os
import shutil
import subprocess

import cv2
from detrack_model.data import imagepool
from detrack_model.data.imagepool import fetch, index, splits
from detrack_model.data.imagepool.packages import PoolPackage
import numpy as np
import pytest

needs_dpkg = pytest.mark.skipif(shutil.which('dpkg-deb') is None,
                                reason="dpkg-deb not found (Debian's dpkg package provides it)")
needs_edje = pytest.mark.skipif(not (shutil.which('edje_cc') and shutil.which('edje_decc')),
                                reason="edje_cc or edje_decc not found (Debian's libedje-bin "
                                       'package provides them)')

OBJECTS = PoolPackage('detrack-test-objects', '1:1.0-1', 'objects',
                      ('usr/share/testobj/**/*.png',), root='usr/share/testobj',
                      group=r'^(.*)/[^/]+$', photo=True, drawing_folders=('cartoon',))
BACKGROUNDS = PoolPackage('detrack-test-backgrounds', '2.0-1', 'backgrounds',
                          ('usr/share/testbg/*.jpg', 'usr/share/testbg/*.png'),
                          root='usr/share/testbg', group=r'^(.+?)(?:_\d+x\d+)?\.[^./]+$',
                          one_per_group=True)
LANDSCAPES = PoolPackage('detrack-test-landscapes', '0.1-1', 'backgrounds',
                         ('usr/share/testland/*/landscape.ini', 'usr/share/testland/**/*.png'),
                         root='usr/share/testland', group=r'^([^/]+)/', layout='stellarium')
PACKAGES = (OBJECTS, BACKGROUNDS, LANDSCAPES)
ARCHIVES = PoolPackage('detrack-test-edje', '0.3-1', 'backgrounds',
                       ('usr/share/testedj/*.edj', 'usr/share/testedj/*/img-*.png'),
                       root='usr/share/testedj', group=r'^([^/]+)/', one_per_group=True,
                       archive='edje')
# An Enlightenment wallpaper: one picture at two sizes (lossless, so it comes back exactly),
# and a tile that is no wallpaper size.
EDJE_SOURCE = """images {
 set { name: "img";
  image { image: "img-480x270.png" COMP; size: 241 136 1000000 1000000; }
  image { image: "img-240x135.png" COMP; size: 0 0 240 135; }
 }
 image: "tile.png" COMP;
}
collections {
 group { name: "e/desktop/background";
  parts {
   part { name: "bg"; description { state: "default" 0; image.normal: "img"; } }
   part { name: "tile"; description { state: "default" 0; image.normal: "tile.png"; } }
  }
 }
}
"""
MISSING = PoolPackage('detrack-no-such-package-xyz', '1.0', 'objects', ('**/*.png',))
LANDSCAPE_INI = """[landscape]
name = Place
type = old_style
nbsidetex = 2
tex0 = side1.png
tex1 = side2.png
nbside = 2
side0 = tex1:0:0:1:1
side1 = tex0:0:0:1:1
groundtex = ground.png
fogtex = fog.png
"""


def _bgra(width, height, box=None, notch=False):
    """
    Return a textured BGRA image, opaque inside ``box`` (x0, y0, x1, y1), clear outside.

    ``notch`` clears the box's upper right quarter: an L-shaped object, not a rectangle.
    """
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 7 % 256, ys * 5 % 256, (xs + ys) % 256, np.zeros_like(xs)],
                     axis=2).astype(np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        image[y0:y1, x0:x1, 3] = 255
        if notch:
            image[y0:(y0 + y1) // 2, (x0 + x1) // 2:x1, 3] = 0
    return image


def _png(image):
    return cv2.imencode('.png', image)[1].tobytes()


def _jpg(image):
    return cv2.imencode('.jpg', image)[1].tobytes()


def _object_files():
    frog = _png(_bgra(100, 80, (10, 20, 50, 60), notch=True))
    big = _bgra(600, 300)
    cv2.ellipse(big, (300, 150), (250, 100), 0, 0, 360, (0, 0, 255, 255), -1)
    return {
        'usr/share/testobj/animals/frog.png': frog,
        'usr/share/testobj/animals/frog_again.png': frog,
        'usr/share/testobj/animals/big.png': _png(big),
        'usr/share/testobj/animals/opaque.png': _png(_bgra(60, 60, (1, 1, 59, 59))),
        'usr/share/testobj/cartoon/cat.png': _png(_bgra(50, 40, (5, 5, 45, 35), notch=True)),
        'usr/share/testobj/plain/no_alpha.png': _png(_bgra(50, 40)[:, :, :3]),
        'usr/share/testobj/plain/speck.png': _png(_bgra(50, 40, (5, 5, 15, 15), notch=True)),
        'usr/share/testobj/readme.txt': b'not an image\n',
    }


def _background_files():
    half = _bgra(2000, 1000, (0, 500, 2000, 1000))
    return {
        'usr/share/testbg/wall1.jpg': _jpg(_bgra(640, 480)[::-1, :, :3]),
        'usr/share/testbg/wall2.png': _png(half),
        'usr/share/testbg/small.jpg': _jpg(_bgra(200, 150)[:, :, :3]),
        'usr/share/testbg/sky_640x480.jpg': _jpg(_bgra(640, 480)[:, :, :3]),
        'usr/share/testbg/sky_2400x1800.jpg': _jpg(_bgra(2400, 1800)[:, :, :3]),
        'usr/share/testbg/link.jpg': ('link', 'wall1.jpg'),
        'usr/share/testbg/sky_800x600.jpg': ('link', 'sky_640x480.jpg'),
        'usr/share/testbg/escape.jpg': ('link', '/etc/hostname'),
    }


def _landscape_files():
    return {
        'usr/share/testland/place/landscape.ini': LANDSCAPE_INI.encode(),
        'usr/share/testland/place/side1.png': _png(_bgra(320, 256, (0, 128, 320, 256))),
        'usr/share/testland/place/side2.png': _png(_bgra(320, 256, (0, 120, 320, 256))),
        'usr/share/testland/place/ground.png': _png(_bgra(400, 300, (0, 0, 400, 300))),
        'usr/share/testland/place/fog.png': _png(_bgra(64, 64)[:, :, 0]),
    }


def _build_deb(debs_dir, package, files):
    """Build ``package``'s .deb holding ``files`` (path: bytes or ('link', target))."""
    tree = debs_dir / f'tree-{package.name}'
    (tree / 'DEBIAN').mkdir(parents=True)
    (tree / 'DEBIAN' / 'control').write_text(
        f'Package: {package.name}\nVersion: {package.version}\nArchitecture: all\n'
        'Maintainer: Test <test@example.com>\nDescription: image-pool test package\n')
    for relative, content in files.items():
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            path.symlink_to(content[1])
        else:
            path.write_bytes(content)
    deb = debs_dir / fetch.deb_filename(package.name, package.version)
    subprocess.run(['dpkg-deb', '-Zgzip', '-z1', '--root-owner-group', '--build', str(tree),
                    str(deb)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return deb


@pytest.fixture(scope='module')
def debs(tmp_path_factory):
    """Build the three test packages' .deb files in one directory."""
    directory = tmp_path_factory.mktemp('debs')
    _build_deb(directory, OBJECTS, _object_files())
    _build_deb(directory, BACKGROUNDS, _background_files())
    _build_deb(directory, LANDSCAPES, _landscape_files())
    return directory


@pytest.fixture(scope='module')
def pool(tmp_path_factory, debs):
    """Fetch, index and split the test packages; return the cache, manifest and log."""
    cache = tmp_path_factory.mktemp('pool')
    lines = []
    manifest = imagepool.prepare_pool(str(cache), debs_dir=str(debs), packages=PACKAGES,
                                      log=lines.append, workers=2)
    return cache, manifest, lines


def _records(cache):
    built = index.read_index(cache)
    return {record['id']: record for record in built['objects'] + built['backgrounds']}


def _rejected(cache):
    return {item['id']: item['reason'] for item in index.read_index(cache)['rejected']}


@needs_dpkg
def test_fetch_unpacks_only_included_files(pool, debs):
    """The .deb comes from the local directory, epoch and all; only included files stay."""
    cache, manifest, lines = pool
    tree = cache / 'packages' / OBJECTS.name
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob('*') if p.is_file())
    assert '.fetched.json' in files and not any(name.endswith('.txt') for name in files)
    assert len([name for name in files if name.endswith('.png')]) == 7
    record = json.loads((tree / '.fetched.json').read_text())
    assert record['version'] == '1:1.0-1' and record['pinned'] == '1:1.0-1'
    assert record['source'] == str(debs / 'detrack-test-objects_1%3a1.0-1_all.deb')
    backgrounds = cache / 'packages' / BACKGROUNDS.name / 'usr/share/testbg'
    # A link out of the tree would read the host's files: it is dropped, the inner one kept.
    assert not os.path.lexists(backgrounds / 'escape.jpg')
    assert (backgrounds / 'link.jpg').is_symlink()
    assert manifest['packages'][OBJECTS.name] == '1:1.0-1'
    assert manifest['fetch'] == {'skipped': [], 'warnings': []}


@needs_dpkg
def test_fetch_is_idempotent(pool, debs):
    """A second fetch finds the packages unpacked at the pinned version and leaves them."""
    cache, _, _ = pool
    marker = cache / 'packages' / OBJECTS.name / '.fetched.json'
    frog = cache / 'packages' / OBJECTS.name / 'usr/share/testobj/animals/frog.png'
    before = (marker.stat().st_mtime_ns, frog.stat().st_mtime_ns, marker.read_text())
    lines = []
    report = fetch.fetch_packages(str(cache), PACKAGES, debs_dir=str(debs), log=lines.append)
    assert [item.reused for item in report.fetched] == [True, True, True]
    assert report.versions()[OBJECTS.name] == '1:1.0-1'
    assert (marker.stat().st_mtime_ns, frog.stat().st_mtime_ns, marker.read_text()) == before
    assert all('already unpacked' in line for line in lines)


@needs_dpkg
def test_new_rules_need_no_new_fetch(tmp_path, debs):
    """Changed naming rules with the same files update .fetched.json without unpacking again."""
    fetch.fetch_packages(str(tmp_path), (OBJECTS,), debs_dir=str(debs), log=lambda line: None)
    tree = tmp_path / 'packages' / OBJECTS.name
    frog = tree / 'usr/share/testobj/animals/frog.png'
    before = frog.stat().st_mtime_ns
    renamed = dataclasses.replace(OBJECTS, group=r'^([^/]+)/', category='other')
    report = fetch.fetch_packages(str(tmp_path), (renamed,), debs_dir=str(debs),
                                  log=lambda line: None)
    assert report.fetched[0].reused and frog.stat().st_mtime_ns == before
    assert fetch.read_fetched(str(tree))['package'] == renamed.to_dict()


@needs_dpkg
def test_a_second_pool_links_the_packages_unpacked_in_the_first(pool, tmp_path):
    """Without any .deb at hand, a pool built with reuse gets the first's files and splits."""
    cache, manifest, _ = pool
    lines = []
    second = imagepool.prepare_pool(str(tmp_path), packages=PACKAGES, log=lines.append,
                                    reuse_dir=str(cache))
    assert second['fetch'] == {'skipped': [], 'warnings': []}
    assert sum('taken from' in line for line in lines) == len(PACKAGES)
    frog = 'packages/detrack-test-objects/usr/share/testobj/animals/frog.png'
    assert (tmp_path / frog).read_bytes() == (cache / frog).read_bytes()
    record = fetch.read_fetched(str(tmp_path / 'packages' / OBJECTS.name))
    assert record == fetch.read_fetched(str(cache / 'packages' / OBJECTS.name))
    assert second['splits'] == manifest['splits']
    # Now unpacked here: a third run neither links nor fetches again.
    lines.clear()
    report = fetch.fetch_packages(str(tmp_path), PACKAGES, log=lines.append,
                                  reuse_dir=str(cache))
    assert all(item.reused for item in report.fetched)
    assert all('already unpacked' in line for line in lines)


@pytest.mark.slow
@needs_dpkg
def test_reuse_ignores_a_package_the_other_pool_has_at_another_version(pool, tmp_path, debs):
    """A package pinned differently from the other pool's copy is fetched, not linked."""
    cache, _, _ = pool
    elsewhere = dataclasses.replace(OBJECTS, version='1:0.9-1')
    report = fetch.fetch_packages(str(tmp_path), (elsewhere,), debs_dir=str(debs),
                                  log=lambda line: None, reuse_dir=str(cache))
    # No .deb of that version exists, and apt-get cannot have this test package either.
    assert [item.name for item in report.skipped] == [OBJECTS.name]
    assert not (tmp_path / 'packages' / OBJECTS.name).exists()


def test_the_photographs_set_adds_training_only_backgrounds_to_the_pool():
    """The photos set is the base set plus photographs that no val or test split ever gets."""
    from detrack_model.data.imagepool.packages import PACKAGES as BASE, POOL_SETS
    photos = imagepool.TRAINING_PHOTOS
    assert POOL_SETS['base'] == BASE and POOL_SETS['photos'] == BASE + photos
    names = [package.name for package in POOL_SETS['photos']]
    assert len(names) == len(set(names))
    assert all(package.role == 'backgrounds' for package in photos)
    assert all(splits.SPLIT_RULES[package.name] == (1.0, 0.0, 0.0) for package in photos)
    assignment = splits.assign_splits(_fake_index({package.name: 50 for package in photos}))
    assert set(assignment.values()) == {'train'}
    more = imagepool.MORE_TRAINING_PHOTOS
    assert POOL_SETS['photos2'] == BASE + photos + more
    assert all(splits.SPLIT_RULES[package.name] == (1.0, 0.0, 0.0) for package in more)


def _edje_archive(directory, picture):
    """Compile an Enlightenment archive of ``picture`` (BGR, 270 x 480) with edje_cc."""
    directory.mkdir()
    cv2.imwrite(str(directory / 'img-480x270.png'), picture)
    cv2.imwrite(str(directory / 'img-240x135.png'), cv2.resize(picture, (240, 135)))
    cv2.imwrite(str(directory / 'tile.png'), picture[:8, :8])
    (directory / 'bg.edc').write_text(EDJE_SOURCE)
    subprocess.run(['edje_cc', '-id', str(directory), str(directory / 'bg.edc'), '-o',
                    str(directory / 'out.edj')], check=True, capture_output=True)
    return (directory / 'out.edj').read_bytes()


@needs_dpkg
@needs_edje
def test_an_archive_package_is_decompiled_and_one_size_of_its_picture_kept(tmp_path):
    """Each .edj becomes a folder of its images; the largest wallpaper size is the pool's."""
    picture = _bgra(480, 270)[:, :, :3].copy()
    archive = _edje_archive(tmp_path / 'edc', picture)
    debs = tmp_path / 'debs'
    debs.mkdir()
    _build_deb(debs, ARCHIVES, {'usr/share/testedj/Leaves.edj': archive,
                                'usr/share/testedj/readme.txt': b'not an image\n'})
    cache = tmp_path / 'pool'
    imagepool.prepare_pool(str(cache), debs_dir=str(debs), packages=(ARCHIVES,),
                           log=lambda line: None)
    tree = cache / 'packages' / ARCHIVES.name / 'usr' / 'share' / 'testedj'
    assert sorted(os.listdir(tree)) == ['Leaves']
    assert sorted(os.listdir(tree / 'Leaves')) == ['img-240x135.png', 'img-480x270.png']
    np.testing.assert_array_equal(cv2.imread(str(tree / 'Leaves' / 'img-480x270.png')), picture)
    records = _records(cache)
    assert list(records) == [f'{ARCHIVES.name}/Leaves/img-480x270.png']
    record = records[f'{ARCHIVES.name}/Leaves/img-480x270.png']
    assert (record['group'], record['width'], record['height']) == ('Leaves', 480, 270)
    assert _rejected(cache)[f'{ARCHIVES.name}/Leaves/img-240x135.png'] == \
        'other size of the same picture'


@needs_dpkg
def test_an_archive_package_without_edje_decc_is_skipped_naming_the_debian_package(
        tmp_path, monkeypatch):
    """Without edje_decc the package is skipped, and the message says what to install."""
    debs = tmp_path / 'debs'
    debs.mkdir()
    _build_deb(debs, ARCHIVES, {'usr/share/testedj/Leaves.edj': b'not an archive'})
    tools = tmp_path / 'bin'
    tools.mkdir()
    for tool in ('dpkg-deb', 'tar', 'gzip', 'xz', 'zstd'):
        if shutil.which(tool):
            (tools / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv('PATH', str(tools))
    lines = []
    report = fetch.fetch_packages(str(tmp_path / 'pool'), (ARCHIVES,), debs_dir=str(debs),
                                  log=lines.append)
    assert not report.fetched
    assert [item.name for item in report.skipped] == [ARCHIVES.name]
    assert 'edje_decc not found' in report.skipped[0].reason
    assert 'libedje-bin' in report.skipped[0].reason
    # Nothing half-unpacked is left that a second run would take for fetched.
    assert not (tmp_path / 'pool' / 'packages' / ARCHIVES.name).exists()


def test_an_unknown_archive_kind_is_refused():
    """A package's archive field must name a known kind."""
    with pytest.raises(ValueError, match='archive must be one of'):
        dataclasses.replace(ARCHIVES, archive='zip')


@pytest.mark.slow
@needs_dpkg
def test_missing_package_is_skipped(tmp_path, debs):
    """A package apt cannot find is skipped with its reason; the others are still fetched."""
    lines = []
    report = fetch.fetch_packages(str(tmp_path), (MISSING, OBJECTS), debs_dir=str(debs),
                                  log=lines.append)
    assert [item.name for item in report.fetched] == [OBJECTS.name]
    assert [item.name for item in report.skipped] == [MISSING.name]
    assert report.skipped[0].reason
    assert any(line.startswith(f'{MISSING.name} 1.0: skipped: ') for line in lines)
    assert not (tmp_path / 'packages' / MISSING.name).exists()
    assert sorted(os.listdir(tmp_path / 'packages')) == [OBJECTS.name]


def test_reserved_package_is_refused(tmp_path):
    """Packages reserved for an independent check never enter the pool."""
    reserved = PoolPackage('opencv-doc', '4.6.0+dfsg-12', 'backgrounds', ('**/*.jpg',))
    with pytest.raises(ValueError, match='opencv-doc.*reserved'):
        fetch.fetch_packages(str(tmp_path), (reserved,), log=lambda line: None)
    assert not (tmp_path / 'packages' / 'opencv-doc').exists()


@needs_dpkg
def test_objects_are_cropped_to_alpha(pool):
    """An object is cropped to its alpha box plus 2 px, big ones scaled to 256 px."""
    cache, _, _ = pool
    records = _records(cache)
    frog = records[f'{OBJECTS.name}/animals/frog.png']
    assert (frog['width'], frog['height']) == (44, 44)
    assert frog['file'] == f'pool/objects/{OBJECTS.name}/animals/frog.png'
    image = cv2.imread(str(cache / frog['file']), cv2.IMREAD_UNCHANGED)
    expected = _bgra(100, 80, (10, 20, 50, 60), notch=True)[18:62, 8:52]
    np.testing.assert_array_equal(image, expected)
    assert frog['alpha_fraction'] == 0.75
    assert (frog['category'], frog['group'], frog['photo']) == ('animals', 'animals', True)
    big = records[f'{OBJECTS.name}/animals/big.png']
    assert (big['width'], big['height']) == (256, 104)
    cat = records[f'{OBJECTS.name}/cartoon/cat.png']
    assert cat['photo'] is False and cat['group'] == 'cartoon'


@needs_dpkg
def test_unusable_objects_are_skipped(pool):
    """Images without alpha, too small, a plain rectangle or a copy are left out and counted."""
    cache, _, lines = pool
    rejected = _rejected(cache)
    prefix = OBJECTS.name + '/'
    assert rejected[prefix + 'plain/no_alpha.png'] == 'no alpha'
    assert rejected[prefix + 'plain/speck.png'] == 'smaller than 24 px'
    assert rejected[prefix + 'animals/opaque.png'] == 'alpha nearly opaque'
    assert rejected[prefix + 'animals/frog_again.png'] == 'duplicate of ' + prefix + \
        'animals/frog.png'
    summary = index.read_index(cache)['packages'][OBJECTS.name]
    assert summary['kept'] == 3 and summary['photo'] == 2
    assert summary['skipped'] == {'alpha nearly opaque': 1, 'duplicate': 1, 'no alpha': 1,
                                  'smaller than 24 px': 1}
    assert any(line.startswith(f'{OBJECTS.name} 1:1.0-1: 3 objects (2 photographs)')
               for line in lines)


@needs_dpkg
def test_backgrounds(pool):
    """Backgrounds: one size per picture, transparency over the matte, at most 1280 px."""
    cache, _, _ = pool
    records = _records(cache)
    prefix = BACKGROUNDS.name + '/'
    ids = sorted(key[len(prefix):] for key in records if key.startswith(prefix))
    assert ids == ['sky_640x480.jpg', 'wall1.jpg', 'wall2.png']
    wall = records[prefix + 'wall2.png']
    assert (wall['width'], wall['height']) == (1280, 640)
    image = cv2.imread(str(cache / wall['file']))
    assert image.shape == (640, 1280, 3)
    np.testing.assert_allclose(image[100, 100], index.MATTE_BGR, atol=3)
    rejected = _rejected(cache)
    assert rejected[prefix + 'small.jpg'] == 'smaller than 320x240'
    # The largest size up to 2000 px wide, named by the file rather than a link to it.
    assert rejected[prefix + 'sky_2400x1800.jpg'] == 'other size of the same picture'
    assert rejected[prefix + 'sky_800x600.jpg'] == 'other size of the same picture'
    assert rejected[prefix + 'link.jpg'] == 'duplicate of ' + prefix + 'wall1.jpg'


@needs_dpkg
def test_landscape_panorama(pool):
    """The side textures are joined in side order and cut into 4:3 windows; fog is unused."""
    cache, _, _ = pool
    records = _records(cache)
    prefix = LANDSCAPES.name + '/place/'
    ids = sorted(key[len(prefix):] for key in records if key.startswith(prefix))
    assert ids == ['ground.png', 'panorama-0', 'panorama-1']
    window = records[prefix + 'panorama-0']
    # 640x256 strip, ground from row 128: the sky is cut to the 240-row minimum.
    assert (window['width'], window['height']) == (320, 240)
    assert {records[prefix + name]['group'] for name in ids} == {'place'}


@needs_dpkg
def test_rebuild_reuses_images(pool):
    """Rebuilding the index leaves the images of unchanged sources untouched."""
    cache, _, _ = pool
    frog = cache / 'pool/objects' / OBJECTS.name / 'animals/frog.png'
    before = frog.stat().st_mtime_ns
    rebuilt = index.build_index(str(cache), log=lambda line: None, workers=1)
    assert frog.stat().st_mtime_ns == before
    assert {r['id'] for r in rebuilt['objects']} == {r['id'] for r in index.read_index(cache)[
        'objects']}


@needs_dpkg
def test_splits_are_disjoint_by_file_and_group(pool):
    """Every image is in exactly one split and no group spans two splits."""
    cache, manifest, _ = pool
    records = _records(cache)
    seen = {}
    for name in splits.SPLITS:
        part = imagepool.load_pool(str(cache), name)
        for item in part.objects + part.backgrounds:
            assert item.id not in seen and os.path.isabs(item.path)
            assert os.path.isfile(item.path)
            seen[item.id] = name
        assert len(part.objects) == len(manifest['splits'][name]['objects'])
    assert set(seen) == set(records)
    groups = {}
    for key, name in seen.items():
        assert groups.setdefault((records[key]['package'], records[key]['group']), name) == name
    on_disk = json.loads((cache / 'splits.json').read_text())
    assert on_disk['packages'] == manifest['packages']


def _fake_index(groups_per_package, files_per_group=2):
    records = {'objects': [], 'backgrounds': [], 'packages': {}}
    for package, count in groups_per_package.items():
        role = 'objects' if package.endswith(('-png', '-default')) else 'backgrounds'
        for group in range(count):
            for number in range(files_per_group):
                records[role].append({'id': f'{package}/g{group}/{number}.png',
                                      'package': package, 'group': f'g{group}',
                                      'file': f'pool/{package}/g{group}/{number}.png',
                                      'photo': False})
    return records


def test_split_rules_per_source():
    """Test-only and val-only sources stay there; clip-art and stamps split about as set."""
    sizes = dict.fromkeys(splits.SPLIT_RULES, 200)
    assignment = splits.assign_splits(_fake_index(sizes))
    by_package = {}
    for key, name in assignment.items():
        counts = by_package.setdefault(key.split('/')[0], dict.fromkeys(splits.SPLITS, 0))
        counts[name] += 1
    for package in ('ukui-wallpapers', 'stellarium-data'):
        assert by_package[package] == {'train': 0, 'val': 0, 'test': 400}
    for package in ('gnome-backgrounds', 'lomiri-wallpapers'):
        assert by_package[package] == {'train': 0, 'val': 400, 'test': 0}
    for package in ('plasma-workspace-wallpapers', 'mate-backgrounds', 'mypaint-data-extras'):
        assert by_package[package]['train'] == 400
    for package, shares in (('openclipart-png', (0.8, 0.1, 0.1)),
                            ('tuxpaint-stamps-default', (0.6, 0.2, 0.2))):
        for split_name, share in zip(splits.SPLITS, shares):
            assert abs(by_package[package][split_name] / 400 - share) < 0.08


def test_split_assignment_is_stable():
    """Adding files and groups never moves an image that was already assigned."""
    before = splits.assign_splits(_fake_index({'openclipart-png': 50}))
    grown = _fake_index({'openclipart-png': 60}, files_per_group=3)
    after = splits.assign_splits(grown)
    assert all(after[key] == name for key, name in before.items())
    for key, name in after.items():
        assert name == after[key.rsplit('/', 1)[0] + '/0.png']
    assert splits.assign_splits(grown, seed=1) != after


@needs_dpkg
def test_load_pool_errors(tmp_path, pool):
    """An unbuilt cache, an unknown split or a lost file give errors saying what to do."""
    with pytest.raises(FileNotFoundError, match='splits.json.*fetch-sources --cache'):
        imagepool.load_pool(str(tmp_path), 'train')
    cache, manifest, _ = pool
    with pytest.raises(ValueError, match='unknown image-pool split'):
        imagepool.load_pool(str(cache), 'training')
    copy = tmp_path / 'copy'
    shutil.copytree(cache, copy, symlinks=True)
    split = next(name for name in splits.SPLITS if manifest['splits'][name]['objects'])
    lost = copy / manifest['splits'][split]['objects'][0]['file']
    lost.unlink()
    with pytest.raises(FileNotFoundError, match=f'{lost}.*fetch-sources'):
        imagepool.load_pool(str(copy), split)


@needs_dpkg
def test_generated_sequences_use_only_their_splits_images(tmp_path, pool):
    """The generator draws targets, backgrounds and distractors from its own split only."""
    from detrack_model.data.synthetic import generate_dataset

    cache, manifest, _ = pool
    used_any = False
    for name in splits.SPLITS:
        part = manifest['splits'][name]
        if not part['objects'] and not part['backgrounds']:
            continue
        allowed = {item['id'] for item in part['objects'] + part['backgrounds']}
        summary = generate_dataset(tmp_path, name, 4, 3, size=(96, 64), seed=3, pool=cache)
        for sequence in summary['names']:
            record = json.loads((tmp_path / name / sequence / 'synthetic.json').read_text())
            pool_ids = [value for value in [*record['sources'].values(),
                                            *record['distractor_sources']]
                        if '/' in value]
            assert set(pool_ids) <= allowed, (name, pool_ids)
            used_any = used_any or bool(pool_ids)
    assert used_any


def test_fetch_sources_names_the_package_set_and_the_pool_to_reuse(capsys):
    """--set picks one of POOL_SETS (base by default); another name is refused."""
    from detrack_model.cli import synth
    parser = synth._parser()
    args = parser.parse_args(['fetch-sources', '--set', 'photos', '--cache', 'b',
                              '--reuse', 'a'])
    assert (args.set, args.cache, args.reuse) == ('photos', 'b', 'a')
    assert parser.parse_args(['fetch-sources']).set == 'base'
    with pytest.raises(SystemExit):
        parser.parse_args(['fetch-sources', '--set', 'everything'])
    assert "invalid choice: 'everything'" in capsys.readouterr().err
