"""
Training data: dataset readers, the pair sampler, crops and augmentation.

Readers (GOT-10k, LaSOT, TrackingNet, COCO) share one interface, :class:`TrackingDataset`,
and are built from recipe entries by type (:data:`DATASET_TYPES`, ``synthetic`` included);
:class:`TrackingPairDataset` turns any mix of them into a deterministic stream of
template/search pairs for a DataLoader. :func:`crop_to_search` is also the tracker's test-time
crop.
"""

from detrack_model.data.coco import Coco
from detrack_model.data.crops import crop_to_search, CropTransform, region_transform
from detrack_model.data.crops import search_transform, warp_crop
from detrack_model.data.factory import build_dataset, build_datasets, DATASET_TYPES
from detrack_model.data.got10k import Got10k
from detrack_model.data.lasot import LaSOT
from detrack_model.data.pair_dataset import (limit_opencv_threads, SKIP_REASONS,
                                             TrackingPairDataset, worker_init)
from detrack_model.data.processing import IMAGENET_MEAN, IMAGENET_STD, normalise_image
from detrack_model.data.processing import PairProcessing
from detrack_model.data.sampler import PairSampler, PairSpec
from detrack_model.data.sequences import AnnotationError, FrameError, read_rgb, SequenceInfo
from detrack_model.data.sequences import TrackingDataset
from detrack_model.data.trackingnet import TrackingNet

__all__ = [
    'AnnotationError', 'build_dataset', 'build_datasets', 'Coco', 'crop_to_search',
    'CropTransform', 'DATASET_TYPES', 'FrameError', 'Got10k', 'IMAGENET_MEAN', 'IMAGENET_STD',
    'LaSOT', 'limit_opencv_threads', 'normalise_image', 'PairProcessing', 'PairSampler',
    'PairSpec', 'read_rgb', 'region_transform', 'search_transform', 'SequenceInfo',
    'SKIP_REASONS', 'TrackingDataset', 'TrackingNet', 'TrackingPairDataset', 'warp_crop',
    'worker_init',
]
