"""Datasets, transforms and data generators. Importing this package registers them into mae_transfer.registry."""
from . import pose_transforms  # noqa: F401  (registers the pose transforms)
from .class_folder import ClassFolderDataset, find_classes
from .coco_keypoints import CocoKeypointsDataset
from .image_folder import UnlabeledImageFolder, find_images
from .label_map_check import CheckLabelMap
from .seeded_samples import SeededBatchSampler, SeededSamples
from .synthetic import (ensure_synthetic, generate_ade_dataset, generate_class_folders, generate_coco_instances,
                        generate_images, generate_pose_dataset, synthetic_data_options)

__all__ = [
    'CheckLabelMap', 'ClassFolderDataset', 'CocoKeypointsDataset', 'SeededBatchSampler', 'SeededSamples',
    'UnlabeledImageFolder', 'find_classes',
    'ensure_synthetic', 'find_images', 'generate_ade_dataset', 'generate_class_folders', 'generate_coco_instances',
    'generate_images', 'generate_pose_dataset', 'synthetic_data_options'
]
