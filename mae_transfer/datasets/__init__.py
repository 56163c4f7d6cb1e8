"""Datasets and data generators. Importing this package registers the datasets into mae_transfer.registry."""
from .image_folder import UnlabeledImageFolder, find_images
from .synthetic_images import generate_images

__all__ = ['UnlabeledImageFolder', 'find_images', 'generate_images']
