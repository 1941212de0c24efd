"""Where the shipped default model is, in a source checkout and in an installed package."""

import os
import pathlib

DEFAULT_MODEL_NAME = 'detrack_tiny_pool_p25'


def default_model_path() -> pathlib.Path:
    """
    Return the bundle stem of the shipped default model.

    ``DETRACK_MODEL`` in the environment wins; otherwise the ``models/`` directory of the
    source tree, then the package's installed share directory (``share/detrack_ros/models``
    next to ``lib/python3.X/site-packages``) are searched.
    """
    override = os.environ.get('DETRACK_MODEL')
    if override:
        return pathlib.Path(override)
    package = pathlib.Path(__file__).resolve().parent
    candidates = [package.parent / 'models']
    if len(package.parents) > 3:
        # <prefix>/lib/python3.X/site-packages/detrack_model -> <prefix>/share/detrack_ros
        candidates.append(package.parents[3] / 'share' / 'detrack_ros' / 'models')
    for directory in candidates:
        if (directory / f'{DEFAULT_MODEL_NAME}.safetensors').is_file():
            return directory / DEFAULT_MODEL_NAME
    raise FileNotFoundError(f'the shipped model {DEFAULT_MODEL_NAME} was not found in '
                            f'{[str(c) for c in candidates]}; pass a model path or set '
                            'DETRACK_MODEL')
