"""Helpers shared by the command-line tools."""

import argparse
import json
import os
import pathlib
from typing import Any, Dict, Iterable, Union

from detrack_model.config import config_from_spec, ENCODERS, ModelConfig, preset
from detrack_model.devices import resolve_device  # noqa: F401 - the CLIs' import path
from detrack_model.tracking.boxes import Box, InitBoxError, validate_box
import yaml

PathLike = Union[str, os.PathLike]


def load_model_config(spec: str) -> ModelConfig:
    """
    Read a model configuration from a preset name or a YAML/JSON file.

    A file holds either the configuration itself or a recipe with it under ``model``.
    """
    if spec in ENCODERS:
        return preset(spec)
    path = pathlib.Path(spec)
    if not path.is_file():
        raise ValueError(f'{spec!r} is neither a model preset ({", ".join(sorted(ENCODERS))}) '
                         'nor a configuration file')
    text = path.read_text()
    data: Dict[str, Any] = json.loads(text) if path.suffix == '.json' else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a mapping at the top level')
    if 'model' in data and isinstance(data['model'], dict):
        data = data['model']
    return config_from_spec(data)


def positive_int(text: str) -> int:
    """Parse an argparse value that must be an integer of at least 1."""
    return _bounded_int(text, 1)


def non_negative_int(text: str) -> int:
    """Parse an argparse value that must be an integer of at least 0."""
    return _bounded_int(text, 0)


def _bounded_int(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < low:
        raise argparse.ArgumentTypeError(f'must be at least {low}, got {value}')
    return value


def box_argument(text: str) -> Box:
    """Return the box of ``x,y,w,h``; raise ArgumentTypeError naming what is wrong."""
    parts = [part.strip() for part in text.split(',')]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f'--box needs four numbers x,y,w,h; got {text!r}')
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f'--box needs four numbers x,y,w,h; got {text!r}') \
            from None
    try:
        return validate_box(values)
    except InitBoxError as error:
        raise argparse.ArgumentTypeError(f'--box {text!r}: {error}') from None


def refuse_overwrite(output: PathLike, inputs: Iterable[PathLike]) -> None:
    """Raise ValueError when ``output`` is one of the files a command reads."""
    target = pathlib.Path(output).expanduser().resolve()
    for path in inputs:
        source = pathlib.Path(path).expanduser().resolve()
        if target == source:
            raise ValueError(f'output {output} is the input file {path}: refusing to overwrite '
                             'it; choose another output')
