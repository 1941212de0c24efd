"""The DETRack network: ViT encoder with candidate elimination, query selection, heads."""

from detrack_model.modeling.detrack import create_model, DETRack

__all__ = ['create_model', 'DETRack']
