"""Process-group set-up for torchrun (DDP): NCCL on GPUs, gloo on CPUs."""

from dataclasses import dataclass
import os
from typing import Tuple

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Tell whether this is rank 0, which writes checkpoints and logs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Tell whether more than one process trains."""
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun job described by the environment (a single process without one)."""
    if 'WORLD_SIZE' not in os.environ or int(os.environ['WORLD_SIZE']) == 1:
        return DistInfo()
    info = DistInfo(int(os.environ['RANK']), int(os.environ['WORLD_SIZE']),
                    int(os.environ.get('LOCAL_RANK', 0)))
    if not dist.is_initialized():
        backend = 'nccl' if device_type == 'cuda' else 'gloo'
        if device_type == 'cuda':
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def join(device: str = 'auto') -> Tuple[DistInfo, torch.device]:
    """
    Resolve ``device`` (auto, cpu, cuda) and join the torchrun job, if there is one.

    Return this process's place in the job and the device it trains on (its local GPU).
    """
    device_type = 'cuda' if device == 'auto' and torch.cuda.is_available() else \
        torch.device('cpu' if device == 'auto' else device).type
    info = init_distributed(device_type)
    if device_type == 'cuda':
        return info, torch.device('cuda', info.local_rank)
    return info, torch.device('cpu')


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op alone)."""
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a tensor over processes (for logging)."""
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def check_same_weights(model: torch.nn.Module, info: DistInfo) -> None:
    """Raise if the processes' copies of the weights have drifted apart (they never should)."""
    if not info.enabled:
        return
    with torch.no_grad():
        checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    gathered = [torch.zeros_like(checksum) for _ in range(info.world_size)]
    dist.all_gather(gathered, checksum.cpu() if checksum.device.type == 'cpu' else checksum)
    if any(value != gathered[0] for value in gathered):
        raise RuntimeError('model weights differ between processes: '
                           f'{[float(v) for v in gathered]}')
