"""Device names as users write them (auto, cpu, cuda, cuda:N), resolved to torch devices."""

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' picks the first GPU when there is one; 'cpu' and 'cuda:N' are taken as said."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f'device {name!r} is not a device name (auto, cpu, cuda, cuda:N): '
                         f'{error}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {name!r} requested but no CUDA GPU is available')
    return device
