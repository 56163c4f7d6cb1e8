"""Datasets, transforms and data generators. Importing this package registers them into mae_transfer.registry."""
from . import pose_transforms  # noqa: F401  (registers the pose transforms)
from .class_folder import ClassFolderDataset, find_classes
from .coco_keypoints import CocoKeypointsDataset
from .image_folder import UnlabeledImageFolder, find_images
from .label_map_check import CheckLabelMap
from .synthetic_ade import generate_ade_dataset
from .synthetic_classes import generate_class_folders
from .synthetic_coco import generate_coco_instances
from .synthetic_images import generate_images
from .synthetic_pose import generate_pose_dataset

__all__ = [
    'CheckLabelMap', 'ClassFolderDataset', 'CocoKeypointsDataset', 'UnlabeledImageFolder', 'find_classes',
    'find_images',
    'generate_ade_dataset', 'generate_class_folders', 'generate_coco_instances', 'generate_images',
    'generate_pose_dataset'
]
