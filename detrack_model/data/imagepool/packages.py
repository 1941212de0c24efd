"""
The pinned Debian packages the image pool is built from.

Each :class:`PoolPackage` says which files of the unpacked package tree to keep (``include``,
glob patterns where ``*`` stays inside one folder and ``**`` spans folders) and how the
indexer names them: ids, categories and groups are taken from the path below ``root``;
``group`` is a regular expression over that path whose first capture names the group (all
files of one group land in one split, see :mod:`detrack_model.data.imagepool.splits`). A
package whose images sit inside archives (``archive``) has them unpacked before the rules apply.
Versions are the ones Debian 12 (bookworm) serves.
"""

from dataclasses import asdict, dataclass
import functools
import re
from typing import Any, Dict, Tuple

ROLES = ('objects', 'backgrounds')
ARCHIVES = ('', 'edje')
# Files of these packages are kept for an independent check: never fetch them into the pool.
RESERVED = ('opencv-doc',)
# ``(.*)/`` names the deepest folder; the default below names the file without extension.
FOLDER_GROUP = r'^(.*)/[^/]+$'
STEM_GROUP = r'^(.+)\.[^./]+$'


@dataclass(frozen=True)
class PoolPackage:
    """One Debian package of the pool and the rules that turn its files into pool images."""

    name: str
    version: str
    role: str
    include: Tuple[str, ...]
    root: str = ''
    group: str = STEM_GROUP
    # Where several files of a group are sizes of one picture, keep just one of them.
    one_per_group: bool = False
    # Category and group of files directly below ``root``.
    category: str = 'misc'
    # Objects: whether the package holds photographs cut out along the object, and the
    # folders (anywhere in the path) whose files are drawings instead.
    photo: bool = False
    drawing_folders: Tuple[str, ...] = ()
    # 'files': every included image is one pool image; 'stellarium': landscape panoramas
    # described by their landscape.ini files.
    layout: str = 'files'
    # 'edje': the included ``.edj`` files are Enlightenment theme archives, which fetching
    # decompiles (``edje_decc``, Debian package libedje-bin) into a folder of the archive's
    # name; ``include`` then also names the images to keep from those folders.
    archive: str = ''

    def __post_init__(self) -> None:
        """Check the role, the layout, the archive kind and the group pattern."""
        if self.role not in ROLES:
            raise ValueError(f'{self.name}: role must be one of {ROLES}, got {self.role!r}')
        if self.layout not in ('files', 'stellarium'):
            raise ValueError(f'{self.name}: unknown layout {self.layout!r}')
        if self.archive not in ARCHIVES:
            raise ValueError(f'{self.name}: archive must be one of {ARCHIVES}, '
                             f'got {self.archive!r}')
        if re.compile(self.group).groups < 1:
            raise ValueError(f'{self.name}: group pattern {self.group!r} has no capture group')

    def matches(self, path: str) -> bool:
        """Return whether ``path`` (relative to the package tree, '/'-separated) is included."""
        return any(_glob_regex(pattern).match(path) for pattern in self.include)

    def relative(self, path: str) -> str:
        """Return ``path`` relative to ``root`` (unchanged when it lies elsewhere)."""
        prefix = self.root.strip('/') + '/' if self.root.strip('/') else ''
        return path[len(prefix):] if path.startswith(prefix) else path

    def category_of(self, relative: str) -> str:
        """Return the category of a path below ``root``: its first folder."""
        return relative.split('/', 1)[0] if '/' in relative else self.category

    def group_of(self, relative: str) -> str:
        """Return the group of a path below ``root`` (the category when the pattern fails)."""
        match = re.match(self.group, relative)
        return match.group(1) if match and match.group(1) else self.category

    def is_photo(self, relative: str) -> bool:
        """Return whether an object at ``relative`` counts as a photograph."""
        folders = relative.split('/')[:-1]
        return self.photo and not any(folder in self.drawing_folders for folder in folders)

    def to_dict(self) -> Dict[str, Any]:
        """Return the fields as a JSON-friendly dict (tuples as lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, fields: Dict[str, Any]) -> 'PoolPackage':
        """Build a package from :meth:`to_dict`'s output (tuples come back from JSON lists)."""
        values = dict(fields)
        for name in ('include', 'drawing_folders'):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


@functools.lru_cache(maxsize=None)
def _glob_regex(pattern: str) -> 're.Pattern[str]':
    parts = []
    index = 0
    while index < len(pattern):
        if pattern.startswith('**/', index):
            parts.append('(?:.*/)?')
            index += 3
        elif pattern.startswith('**', index):
            parts.append('.*')
            index += 2
        elif pattern[index] == '*':
            parts.append('[^/]*')
            index += 1
        elif pattern[index] == '?':
            parts.append('[^/]')
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile(''.join(parts) + r'\Z')


PACKAGES: Tuple[PoolPackage, ...] = (
    # Stamps: about 440 of them are photographs cut out along the object; the folder is the
    # category (animals, food, vehicles...), the deepest folder the group.
    PoolPackage('tuxpaint-stamps-default', '2022.06.04-1', 'objects',
                ('usr/share/tuxpaint/stamps/**/*.png',), root='usr/share/tuxpaint/stamps',
                group=FOLDER_GROUP, photo=True, drawing_folders=('cartoon', 'symbols')),
    PoolPackage('openclipart-png', '1:0.18+dfsg-19', 'objects',
                ('usr/share/openclipart/png/**/*.png',), root='usr/share/openclipart/png',
                group=FOLDER_GROUP, category='clipart'),
    # Wallpapers at up to a dozen resolutions each (many of them symbolic links to the
    # largest): the wallpaper's folder is the group and one size is kept.
    PoolPackage('plasma-workspace-wallpapers', '4:5.27.5-2', 'backgrounds',
                ('usr/share/wallpapers/*/contents/images/*.jpg',
                 'usr/share/wallpapers/*/contents/images/*.png',
                 'usr/share/wallpapers/*/contents/images_dark/*.jpg',
                 'usr/share/wallpapers/*/contents/images_dark/*.png'),
                root='usr/share/wallpapers', group=r'^([^/]+)/', one_per_group=True),
    # Light and dark variants (name-l, name-d) of one picture share a group; the SVGs are
    # left out (no renderer needed).
    PoolPackage('gnome-backgrounds', '43.1-1', 'backgrounds',
                ('usr/share/backgrounds/gnome/*.webp', 'usr/share/backgrounds/gnome/*.jpg',
                 'usr/share/backgrounds/gnome/*.png'),
                root='usr/share/backgrounds/gnome', group=r'^(.+?)(?:-[ld])?\.[^./]+$'),
    # Elephants comes in three sizes (Elephants, Elephants_3840x2160, ...).
    PoolPackage('mate-backgrounds', '1.26.0-1', 'backgrounds',
                ('usr/share/backgrounds/mate/**/*.jpg', 'usr/share/backgrounds/mate/**/*.png'),
                root='usr/share/backgrounds/mate', group=r'^(.+?)(?:_\d+x\d+)?\.[^./]+$',
                one_per_group=True),
    # Paper and canvas textures, numbered variants of one paper share a group.
    PoolPackage('mypaint-data-extras', '2.0.1-9', 'backgrounds',
                ('usr/share/mypaint/backgrounds/**/*.png',),
                root='usr/share/mypaint/backgrounds', group=r'^(.+?)[ _]?\d*\.[^./]+$'),
    PoolPackage('ukui-wallpapers', '20.04.3-1.1', 'backgrounds',
                ('usr/share/backgrounds/*.jpg', 'usr/share/backgrounds/*.png'),
                root='usr/share/backgrounds'),
    # One wallpaper (and a symbolic link to it).
    PoolPackage('lomiri-wallpapers', '20.04.0-2', 'backgrounds',
                ('usr/share/backgrounds/*.jpg', 'usr/share/backgrounds/*.png'),
                root='usr/share/backgrounds'),
    # Panoramas of real places with a transparent sky; the landscape is the group.
    PoolPackage('stellarium-data', '0.22.2-1', 'backgrounds',
                ('usr/share/stellarium/landscapes/*/landscape.ini',
                 'usr/share/stellarium/landscapes/**/*.png',
                 'usr/share/stellarium/landscapes/**/*.jpg'),
                root='usr/share/stellarium/landscapes', group=r'^([^/]+)/',
                layout='stellarium'),
)
# Photographs of real scenes, for training backgrounds only: the training wallpapers above are
# mostly abstract art and paper. A set of their own, so a pool built without them, and what
# was trained on one, stay as they were; `fetch-sources --set photos` builds the larger pool.
TRAINING_PHOTOS: Tuple[PoolPackage, ...] = (
    # Earlier Ubuntu Touch wallpapers: landscapes, a bridge, a dragonfly, wine, a few patterns.
    PoolPackage('lomiri-wallpapers-16.04', '20.04.0-2', 'backgrounds',
                ('usr/share/backgrounds/*.jpg',), root='usr/share/backgrounds'),
    PoolPackage('lomiri-wallpapers-20.04', '20.04.0-2', 'backgrounds',
                ('usr/share/backgrounds/*.jpg',), root='usr/share/backgrounds'),
    # Tux Paint's templates: photographs of bark, rocks, waves, trees, a lighthouse, sheep.
    PoolPackage('tuxpaint-data', '1:0.9.28-sdl2-1', 'backgrounds',
                ('usr/share/tuxpaint/templates/*.jpg',), root='usr/share/tuxpaint/templates'),
)
# More photographs for training backgrounds, in a set of their own for the same reason.
MORE_TRAINING_PHOTOS: Tuple[PoolPackage, ...] = (
    # Enlightenment's wallpapers: bamboo, maple leaves, flowers, snowy trees, lanterns,
    # mountains, clouds, and a few drawings. Each archive holds one picture at a dozen sizes
    # (img-WxH.png, the folder is the group); the tiled patterns and the drawn flower are left
    # out.
    PoolPackage('enlightenment-data', '0.25.4-2', 'backgrounds',
                ('usr/share/enlightenment/data/backgrounds/*.edj',
                 'usr/share/enlightenment/data/backgrounds/*/img-*.png'),
                root='usr/share/enlightenment/data/backgrounds', group=r'^([^/]+)/',
                one_per_group=True, archive='edje'),
)
# The package sets a pool can be built from (``fetch-sources --set``).
POOL_SETS: Dict[str, Tuple[PoolPackage, ...]] = {
    'base': PACKAGES,
    'photos': PACKAGES + TRAINING_PHOTOS,
    'photos2': PACKAGES + TRAINING_PHOTOS + MORE_TRAINING_PHOTOS,
}


def check_not_reserved(names: Tuple[str, ...]) -> None:
    """Raise ValueError when one of ``names`` is in :data:`RESERVED`."""
    reserved = sorted(set(names) & set(RESERVED))
    if reserved:
        raise ValueError(f'package(s) {", ".join(reserved)} are reserved for an independent '
                         'check and must never enter the image pool')
