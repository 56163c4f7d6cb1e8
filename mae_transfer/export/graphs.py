"""What each task exports: the tensor-in, tensor-out part of its network, and how a runtime replaces that part.

A trained model of ours is a network wrapped in Python that prepares inputs (data pipelines, normalisation,
padding) and decodes outputs (mmdet's RPN and RoI heads, sliding-window stitching, heatmap decoding, softmax).
The export takes the network only; the Python around it stays, so predictions from onnxruntime go through the
same code as PyTorch's and can be compared number for number. One `TaskGraph` per task holds both sides of that
boundary, so what is exported and what an exported graph replaces cannot drift apart:

    task      exported graph                           inputs            outputs
    cls       backbone + pooling + head                [N, 3, H, W]      logits [N, classes]
    seg       backbone + neck + decode head + resize   [N, 3, crop]      logits [N, classes, crop] (input size)
    pose      backbone + heatmap head                  [N, 3, H, W]      heatmaps [N, K, H / 4, W / 4]
    pretrain  MAE encoder, no masking                  [N, 3, H, W]      features [N, 1 + L, D] (cls token first)
    det       backbone + simple feature pyramid        [N, 3, H, W]      p2 .. p6 [N, 256, H / 4 .. H / 64, ...]

Inputs are normalised images, exactly what the network receives after the config's data preprocessor or
transform; the batch axis is dynamic, the spatial size is the one exported (the ViT's position table is resized
for it once, at export time).
"""
from dataclasses import dataclass
from typing import Callable, Tuple

import torch
from torch import nn

from ..utils.configs import config_task, evaluation_dataset, sliding_window

Runtime = Callable[[torch.Tensor], object]  # normalised images -> an output tensor, or a tuple of them


@dataclass
class TaskGraph:
    """The exported part of a task's model.

    Attributes:
        task: 'cls', 'seg', 'pose', 'pretrain' or 'det'.
        module: the graph to export: one input tensor [N, 3, H, W] -> `output_names` tensors.
        input_size: the exported (height, width).
        output_names: names of the graph's outputs, in order.
        attach: replaces the model's graph by a runtime (same inputs and outputs), in place.
    """
    task: str
    module: nn.Module
    input_size: Tuple[int, int]
    output_names: Tuple[str, ...]
    attach: Callable[[nn.Module, Runtime], None]


class _Method(nn.Module):
    """A model method as a module: exporters trace modules, and the model itself stays untouched."""

    def __init__(self, owner: nn.Module, method: str):
        super().__init__()
        self.owner, self.method = owner, method

    def forward(self, inputs: torch.Tensor):
        return getattr(self.owner, self.method)(inputs)


def _replace_method(model: nn.Module, method: str) -> Callable[[nn.Module, Runtime], None]:
    """An `attach` that shadows `model.<method>` with the runtime: every caller (predict, flip test, the
    evaluator's test_step) then runs the runtime instead of the PyTorch graph."""
    def attach(target: nn.Module, runtime: Runtime) -> None:
        # the instance attribute shadows the class's method; a plain callable (not an nn.Module) is stored in
        # __dict__, where attribute lookup finds it first
        object.__setattr__(target, method, runtime)
    return attach


def _size(value) -> Tuple[int, int]:
    """(height, width) from an int, (h, w), or timm's (channels, h, w)."""
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    return value[-2], value[-1]


# ---------------------------------------------------------------------------------------------------- per task

def _cls_graph(model: nn.Module) -> TaskGraph:
    transform = dict(evaluation_dataset(model.cfg).get('transform') or {})
    size = _size(transform['input_size']) if 'input_size' in transform else model.backbone.patch_embed.img_size
    return TaskGraph('cls', _Method(model, 'forward_logits'), _size(size), ('logits',),
                     _replace_method(model, 'forward_logits'))


def _pose_graph(model: nn.Module) -> TaskGraph:
    width, height = model.codec.input_size
    return TaskGraph('pose', _Method(model, 'forward_heatmaps'), (int(height), int(width)), ('heatmaps',),
                     _replace_method(model, 'forward_heatmaps'))


class _MAEEncoder(nn.Module):
    """The pretrained encoder's features for whole images (no masking): what transfer starts from."""

    def __init__(self, pretrainer: nn.Module):
        super().__init__()
        self.pretrainer = pretrainer

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # the MAE keeps timm's strict PatchEmbed (pretraining runs at one size); the graph takes any size whose
        # sides divide by the patch, with pos_embed resized to its grid (`ViTEncoder._pos_embed_for`), as the
        # transfer backbones do
        patch_embed = self.pretrainer.mae.patch_embed
        strict, patch_embed.strict_img_size = patch_embed.strict_img_size, False
        try:
            return self.pretrainer.mae.forward_features(inputs)  # [N, 1 + L, D]
        finally:
            patch_embed.strict_img_size = strict


def _refuse_reconstruction(model: nn.Module, runtime: Runtime) -> None:
    raise ValueError('the pretraining export holds the MAE encoder (features for transfer); reconstructions need '
                     'the masking and the decoder: run them with the PyTorch backend')


def _pretrain_graph(model: nn.Module) -> TaskGraph:
    return TaskGraph('pretrain', _MAEEncoder(model), _size(model.mae.patch_embed.img_size), ('features',),
                     _refuse_reconstruction)


class _SegLogits(nn.Module):
    """mmseg's `encode_decode` for a batch whose images all have the input's size: backbone, neck, decode head,
    and the bilinear resize to the input size that `decode_head.predict` applies."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        from mmseg.models.utils import resize
        head = self.segmentor.decode_head
        logits = head.forward(self.segmentor.extract_feat(inputs))  # [N, C, H / 4, W / 4]
        return resize(logits, size=inputs.shape[2:], mode='bilinear', align_corners=head.align_corners)


def _attach_seg(model: nn.Module, runtime: Runtime) -> None:
    # mmseg's whole and slide inference both call encode_decode(inputs, metas) and expect logits at the input's
    # size (slide: img_shape = the crop's), which is what the graph returns
    object.__setattr__(model, 'encode_decode', lambda inputs, batch_img_metas: runtime(inputs))


def _seg_graph(model: nn.Module) -> TaskGraph:
    if (model.test_cfg or {}).get('mode') == 'slide':
        size = sliding_window(model.cfg)[0]
    else:
        size = model.backbone.patch_embed.img_size
    return TaskGraph('seg', _SegLogits(model), _size(size), ('logits',), _attach_seg)


class _BackboneNeck(nn.Module):
    """The detector's `extract_feat`: ViT backbone and simple feature pyramid, one map per level."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.detector.extract_feat(inputs))


def _attach_det(model: nn.Module, runtime: Runtime) -> None:
    object.__setattr__(model, 'extract_feat', lambda inputs: tuple(runtime(inputs)))


def _det_input_size(model: nn.Module) -> Tuple[int, int]:
    """The padded test input: the test Resize's longer side rounded up to the preprocessor's pad divisor (ViTDet
    pads every test image to 1024 x 1024 this way; the backbone's own img_size is its pretraining size)."""
    from mmdet.utils import get_test_pipeline_cfg
    resize = [step for step in get_test_pipeline_cfg(model.cfg) if str(step['type']).split('.')[-1] == 'Resize']
    if not resize:
        return _size(model.backbone.patch_embed.img_size)
    scale = resize[0]['scale']
    side = max(scale) if isinstance(scale, (tuple, list)) else int(scale)
    divisor = int((model.cfg.model.get('data_preprocessor') or {}).get('pad_size_divisor', 1))
    side = -(-side // divisor) * divisor
    return side, side


def _det_graph(model: nn.Module) -> TaskGraph:
    names = tuple(f'p{2 + level}' for level in range(model.neck.num_outs))  # strides 4, 8, ... at patch 16
    return TaskGraph('det', _BackboneNeck(model), _det_input_size(model), names, _attach_det)


_BUILDERS = {'cls': _cls_graph, 'pose': _pose_graph, 'pretrain': _pretrain_graph, 'seg': _seg_graph,
             'det': _det_graph}


def task_graph(model: nn.Module) -> TaskGraph:
    """The exported part of a model from `mae_transfer.apis.init_model` (it carries its config as `model.cfg`)."""
    graph = _BUILDERS[config_task(model.cfg)](model)
    # a new module is in training mode, and exporters restore a module's mode after tracing: the wrapper would
    # put the model (its submodule) into training mode (dropout, drop path, batch statistics) behind our back
    graph.module.train(model.training)
    return graph


__all__ = ['Runtime', 'TaskGraph', 'task_graph']
