"""Helpers shared by the command-line tools."""

import json
import pathlib
from typing import Any, Dict

from detrack_model.config import config_from_spec, ENCODERS, ModelConfig, preset
import torch
import yaml


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


def resolve_device(name: str) -> torch.device:
    """'auto' picks the first GPU when there is one; 'cpu' and 'cuda:N' are taken as said."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {name!r} requested but no CUDA GPU is available')
    return device
