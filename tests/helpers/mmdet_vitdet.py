"""mmdet's ViTDet project (open-mmlab/mmdetection `projects/ViTDet/`, not in the mmdet wheel) rewritten as a test
reference: `vitdet/vit.py` (ViT, LN2d), `vitdet/simple_fpn.py` (SimpleFPN) and the model of
`configs/vitdet_mask-rcnn_vit-b-mae_lsj-100e.py` over `configs/_base_/models/mask-rcnn_r50_fpn.py`, read at the
v3.1.0 release commit f78af7785ada87f1ced75a2313746e4ba3149760 (blobs vit.py 96bf9bb, simple_fpn.py 25c547f,
config c44a7a0, lsj-100e_coco-instance.py 4c8d77a; the folder's only commit up to there is 90f7aaf, #9812; that
v3.3.0 still has them unchanged is assumed, not checked). Classes live in a private registry (scope
`mmdet_vitdet_ref`, a child of mmdet's MODELS); LN2d is found as the project finds it: mmcv's build_norm_layer
looks `type` up in the current default scope's registry, where the project registered LN2d (mmdet's MODELS).

Project state-dict keys (ViT-B):
- backbone: `patch_embed.proj.{weight,bias}`; `pos_embed` [1, 197, 768] (pretrain_img_size 224 plus the cls row,
  pretrain_use_cls_token=True; each forward drops the row and resizes the 14 x 14 grid bicubically,
  align_corners=False, to the input grid); `blocks.N.{norm1,norm2}.*`, `blocks.N.attn.{qkv,proj}.*`,
  `blocks.N.attn.rel_pos_{h,w}` ([27, 64] in window blocks, [127, 64] in the global blocks 2, 5, 8, 11: sized
  for img_size 1024), `blocks.N.mlp.{fc1,fc2}.*` (not lin1/lin2). No cls_token, no final norm.
- neck: `fpn1` = 0 ConvTranspose2d(768, 384, 2, 2), 1 LN2d(384), 2 GELU, 3 ConvTranspose2d(384, 192, 2, 2);
  `fpn2` = 0 ConvTranspose2d(768, 384, 2, 2); `fpn3` = 0 Identity; `fpn4` = 0 MaxPool2d(2, 2);
  `lateral_convs.N.conv.weight` (1x1, no bias) + `lateral_convs.N.norm_layer.{weight,bias}`,
  `fpn_convs.N.conv.weight` (3x3, no bias) + `fpn_convs.N.norm_layer.*`, N = 0..3 (in 192, 384, 768, 768); no act.
- heads: `rpn_head.rpn_conv.{0,1}.conv.{weight,bias}` (conv + ReLU, no norm: RPNHead takes no norm_cfg),
  `rpn_cls`, `rpn_reg`; `roi_head.bbox_head.shared_convs.{0..3}.conv.weight` + `.norm_layer.*`, `shared_fcs.0`,
  `fc_cls`, `fc_reg`; `roi_head.mask_head.convs.{0..3}.conv.weight` + `.norm_layer.*`, `upsample`,
  `conv_logits`. mmcv's infer_abbr names LN2d `norm_layer` (no nn.LayerNorm subclass, no 'layer' in the name).

Differences from this repo (mae_vit.py, window_attention.py, simple_fpn.py, the det config):
1. LayerNorm eps is 1e-5 everywhere in the project: its backbone norm_cfg dict(type='LN', requires_grad=True)
   replaces the ViT default eps 1e-6, and mmcv's build_norm_layer does setdefault('eps', 1e-5), LN2d included
   (backbone norm1/2, neck fpn1.1 and conv norms, RoI heads). Ours (and detectron2's): 1e-6.
2. LN2d computes mean/var by hand in the input dtype (fp16 under AMP); our LayerNorm2d calls F.layer_norm
   (fp32 under autocast). Same formula (biased variance). At equal eps our MAEViT and SimpleFPN reproduce
   this file's ViT / SimpleFPN (renamed weights, windows with padding, non-square grid) to ~1e-5.
3. Key names: our heads' norm is `ln` (mae_transfer.LayerNorm2d subclasses nn.LayerNorm) not `norm_layer`;
   our neck has `stems.K` (stems.1 a bare deconv), `lateral_convs.N.{0,1}`, `output_convs.N.{0,1}`.
4. Neck init: ConvModule convs get kaiming_normal (fan_out, relu); ours PyTorch's default (detectron2's).
5. Backbone: pos_embed [1, 197, D] with the cls row in both; ours also keeps `cls_token` and `norm`
   (unused, frozen) and resizes pos_embed through timm's
   resample_abs_pos_embed (bicubic, no antialias); zero-pads images to patch multiples (the project's conv
   floors). Project init without init_cfg: trunc_normal(0.02) Linear; with one: ckpt['model'] non-strict
   (a file without 'model' fails). Zero rel-pos init and zero window padding after norm1 in both.
6. Config: same train_cfg / test_cfg (rpn nms_pre 1000, max_per_img 1000, nms 0.7, min_bbox_size 0; rcnn
   score_thr 0.05, nms 0.5, max_per_img 100, mask_thr_binary 0.5), RoIAlign 7 / 14 with sampling_ratio 0,
   coder stds (0.1, 0.1, 0.2, 0.2), rpn num_convs 2, Shared4Conv1FCBBoxHead: both use mmdet's base. Test data:
   the project pads to 1024 in the pipeline with value 114 (img_shape becomes 1024 x 1024, so boxes clip to
   the canvas); ours pads in the preprocessor (pad_size_divisor 1024, normalised 0) keeping img_shape.
   Training: project pad_size_divisor 32 + BatchFixedSizePad(1024), LayerDecayOptimizerConstructor
   (layer_wise, 0.7, 12), Fp16CompresssionHook (DDP gradients), DefaultSampler, auto_scale_lr off,
   max_keep_ckpts 5; ours 'vitdet' weight-decay rule, no hook, InfiniteSampler, auto_scale_lr on, 3 ckpts.
"""
import copy
import math
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import mmdet.registry
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModule
from mmengine.registry import DefaultScope, Registry
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

SCOPE = 'mmdet_vitdet_ref'


def _child(parent: Registry) -> Registry:
    """mmdet's `parent` registry's child under the private scope (reused on re-import: a registry has one
    child per scope); lookups fall back to mmdet (and mmengine) for everything not defined here."""
    child = parent._children.get(SCOPE)  # not `or`: an empty Registry is falsy (it has __len__)
    return child if child is not None else Registry(parent.name, parent=parent, scope=SCOPE)


MODELS, TASK_UTILS = _child(mmdet.registry.MODELS), _child(mmdet.registry.TASK_UTILS)
# mmengine imports `<default scope>.registry` on every build and warns when it cannot: answer with this module
sys.modules.setdefault(f'{SCOPE}.registry', sys.modules[__name__])


@MODELS.register_module(force=True)
class LN2d(nn.Module):
    """`LN2d` of vit.py at f78af77: LayerNorm over the channels of [N, C, H, W], computed by hand."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(normalized_shape)), nn.Parameter(torch.zeros(normalized_shape))
        self.eps, self.normalized_shape = eps, (normalized_shape, )

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)  # [N, 1, H, W]
        var = (x - mean).pow(2).mean(1, keepdim=True)  # [N, 1, H, W], biased
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def abs_pos(pos_embed: Tensor, has_cls_token: bool, hw: Tuple[int, int]) -> Tensor:
    """`get_abs_pos` (vit.py at f78af77): [1, (1 +) S*S, D] -> [1, h, w, D], bicubic when S x S != hw."""
    if has_cls_token:
        pos_embed = pos_embed[:, 1:]  # [1, S*S, D]
    side = int(math.sqrt(pos_embed.shape[1]))
    assert side * side == pos_embed.shape[1]
    if (side, side) == tuple(hw):
        return pos_embed.reshape(1, side, side, -1)  # [1, h, w, D]
    grid = pos_embed.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # [1, D, S, S]
    grid = F.interpolate(grid, size=hw, mode='bicubic', align_corners=False)  # [1, D, h, w]
    return grid.permute(0, 2, 3, 1)  # [1, h, w, D]


def rel_pos(q_size: int, k_size: int, table: Tensor) -> Tensor:
    """`get_rel_pos` (vit.py at f78af77): table [M, d] (linearly resized to 2 max(q, k) - 1 rows) ->
    [q_size, k_size, d], entry [i, j] for the scaled offset i - j."""
    rows = int(2 * max(q_size, k_size) - 1)
    if table.shape[0] != rows:
        resized = F.interpolate(table.reshape(1, table.shape[0], -1).permute(0, 2, 1), size=rows,
                                mode='linear')  # [1, d, rows]
        table = resized.reshape(-1, rows).permute(1, 0)  # [rows, d]
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    offsets = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)  # [q, k], >= 0
    return table[offsets.long()]


class Attention(nn.Module):
    """`Attention` (vit.py at f78af77): explicit softmax attention with decomposed rel-pos on a grid."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, use_rel_pos: bool = False,
                 input_size: Optional[Tuple[int, int]] = None) -> None:
        super().__init__()
        self.num_heads, self.use_rel_pos, head_dim = num_heads, use_rel_pos, dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3, bias=qkv_bias), nn.Linear(dim, dim)
        if use_rel_pos:  # rel_pos_zero_init=True: no trunc_normal
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape  # x: [B, h, w, D]
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # [3, B, n, hw, d]
        q, k, v = qkv.reshape(3, b * self.num_heads, h * w, -1).unbind(0)  # each [B*n, hw, d]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # [B*n, hw, hw]
        if self.use_rel_pos:  # `add_decomposed_rel_pos`, with the unscaled q
            rh, rw = rel_pos(h, h, self.rel_pos_h), rel_pos(w, w, self.rel_pos_w)  # [h, h, d], [w, w, d]
            r_q = q.reshape(b * self.num_heads, h, w, -1)  # [B*n, h, w, d]
            rel_h = torch.einsum('bhwc,hkc->bhwk', r_q, rh)  # [B*n, h, w, h]
            rel_w = torch.einsum('bhwc,wkc->bhwk', r_q, rw)  # [B*n, h, w, w]
            attn = (attn.view(-1, h, w, h, w) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).view(
                -1, h * w, h * w)  # [B*n, hw, hw]
        x = (attn.softmax(dim=-1) @ v).view(b, self.num_heads, h, w, -1)  # [B, n, h, w, d]
        return self.proj(x.permute(0, 2, 3, 1, 4).reshape(b, h, w, -1))  # [B, h, w, D]


class Block(nn.Module):
    """`Block` (vit.py at f78af77): pre-norm block; window blocks zero-pad the normed grid, attend per window
    (the output projection included) and crop."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float,
                 norm_cfg: dict, act_cfg: dict, use_rel_pos: bool, window_size: int,
                 input_size: Tuple[int, int]) -> None:
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.attn = Attention(dim, num_heads, qkv_bias, use_rel_pos,
                              input_size if window_size == 0 else (window_size, window_size))
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        hidden = int(dim * mlp_ratio)  # `Mlp`: fc1, act, drop1, fc2, drop2 (drops are p=0)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.act, self.mlp.fc2 = nn.Linear(dim, hidden), build_activation_layer(act_cfg), \
            nn.Linear(hidden, dim)
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        shortcut, x, ws = x, self.norm1(x), self.window_size  # x: [N, H, W, D]
        n, h, w, c = x.shape
        if ws > 0:  # `window_partition`
            pad_h, pad_w = (ws - h % ws) % ws, (ws - w % ws) % ws
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # [N, Hp, Wp, D]
            hp, wp = h + pad_h, w + pad_w
            x = x.view(n, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)
        x = self.attn(x)  # [N*nW, ws, ws, D] or [N, H, W, D]
        if ws > 0:  # `window_unpartition`
            x = x.view(n, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, c)
            x = x[:, :h, :w, :].contiguous()  # [N, H, W, D]
        x = shortcut + self.drop_path(x)
        mlp = self.mlp.fc2(self.mlp.act(self.mlp.fc1(self.norm2(x))))
        return x + self.drop_path(mlp)


@MODELS.register_module(force=True)
class ViT(BaseModule):
    """`ViT` (vit.py at f78af77) without activation checkpointing: returns one map [N, D, H/p, W/p]."""

    def __init__(self, img_size: int = 1024, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, norm_cfg: dict = dict(type='LN', eps=1e-6),
                 act_cfg: dict = dict(type='GELU'), use_abs_pos: bool = True, use_rel_pos: bool = False,
                 window_size: int = 0, window_block_indexes: Sequence[int] = (0, 1, 3, 4, 6, 7, 9, 10),
                 pretrain_img_size: int = 224, pretrain_use_cls_token: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.pretrain_use_cls_token, self.init_cfg = pretrain_use_cls_token, init_cfg
        self.patch_embed = nn.Module()  # `PatchEmbed`: its conv is `proj`
        self.patch_embed.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = None
        if use_abs_pos:
            num_positions = (pretrain_img_size // patch_size) ** 2 + int(pretrain_use_cls_token)
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        grid = (img_size // patch_size, img_size // patch_size)  # global blocks' rel-pos tables
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, dpr[i], norm_cfg, act_cfg, use_rel_pos,
                  window_size if i in window_block_indexes else 0, grid) for i in range(depth))

    def init_weights(self) -> None:
        """trunc_normal(0.02) Linear / unit LayerNorm without init_cfg; else ckpt['model'], non-strict."""
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.LayerNorm)) and m.bias is not None:
                    nn.init.constant_(m.bias, 0)
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.constant_(m.weight, 1.0)
            return
        ckpt = CheckpointLoader.load_checkpoint(self.init_cfg['checkpoint'], map_location='cpu')
        self.load_state_dict(ckpt['model'], False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed.proj(x).permute(0, 2, 3, 1)  # [N, D, h, w] -> [N, h, w, D]
        if self.pos_embed is not None:
            x = x + abs_pos(self.pos_embed, self.pretrain_use_cls_token, (x.shape[1], x.shape[2]))
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2)  # [N, D, h, w]


@MODELS.register_module(force=True)
class SimpleFPN(BaseModule):
    """`SimpleFPN` (simple_fpn.py at f78af77): fpn1 x4, fpn2 x2, fpn3 x1, fpn4 x0.5 from the one map, then a
    1x1 and a 3x3 ConvModule per level (no top-down sum), extra levels by max_pool2d(kernel 1, stride 2)."""

    def __init__(self, backbone_channel: int, in_channels: List[int], out_channels: int, num_outs: int,
                 conv_cfg: Optional[dict] = None, norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        c = backbone_channel
        self.num_ins, self.num_outs = len(in_channels), num_outs
        self.fpn1 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 2, 2), build_norm_layer(norm_cfg, c // 2)[1],
                                  nn.GELU(), nn.ConvTranspose2d(c // 2, c // 4, 2, 2))
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c, c // 2, 2, 2))
        self.fpn3 = nn.Sequential(nn.Identity())
        self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))
        conv = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
        self.lateral_convs = nn.ModuleList(ConvModule(ch, out_channels, 1, **conv) for ch in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, padding=1, **conv)
                                       for _ in in_channels)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        inputs = [self.fpn1(x), self.fpn2(x), self.fpn3(x), self.fpn4(x)]  # strides 4, 8, 16, 32
        outs = [fpn_conv(lateral(inputs[i]))
                for i, (lateral, fpn_conv) in enumerate(zip(self.lateral_convs, self.fpn_convs))]
        for _ in range(self.num_outs - self.num_ins):
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))  # [N, out, ceil(h/2), ceil(w/2)]
        return tuple(outs)


BASE = dict(embed_dim=768, depth=12, num_heads=12, window_size=14, window_block_indexes=(0, 1, 3, 4, 6, 7, 9, 10),
            img_size=1024, pretrain_img_size=224, drop_path_rate=0.1)
TINY = dict(embed_dim=64, depth=2, num_heads=2, window_size=4, window_block_indexes=(0, ), img_size=128,
            pretrain_img_size=64, drop_path_rate=0.1)


def reference_model_cfg(arch: str = 'base', checkpoint: Optional[str] = None, num_classes: int = 80,
                        **dims) -> dict:
    """The project's whole Mask R-CNN model dict, merged as its config does: mmdet's (wheel-shipped, unchanged
    since 2022) mask-rcnn_r50_fpn base plus the ViTDet overrides at f78af77. `arch` 'base' (ViT-B) or 'tiny';
    `dims` override BASE / TINY keys (embed_dim, depth, num_heads, window_size, window_block_indexes, img_size,
    pretrain_img_size, drop_path_rate). `checkpoint`: the backbone's Pretrained file (the project's:
    'mae_pretrain_vit_base.pth'); None builds it without init_cfg."""
    assert set(dims) <= set(BASE), f'unknown keys {set(dims) - set(BASE)}'
    d = dict(BASE if arch == 'base' else TINY, **dims)
    c, size = d['embed_dim'], d['img_size']
    norm_cfg = dict(type='LN2d', requires_grad=True)
    backbone = dict(_delete_=True, type='ViT', patch_size=16, mlp_ratio=4, qkv_bias=True, use_rel_pos=True,
                    norm_cfg=dict(type='LN', requires_grad=True),
                    **dict(d, window_block_indexes=list(d['window_block_indexes'])),
                    init_cfg=dict(type='Pretrained', checkpoint=checkpoint) if checkpoint else None)
    cfg = Config.fromfile(Path(mmdet.__file__).parent / '.mim/configs/_base_/models/mask-rcnn_r50_fpn.py')
    cfg.merge_from_dict(dict(model=dict(
        data_preprocessor=dict(pad_size_divisor=32, batch_augments=[
            dict(type='BatchFixedSizePad', size=(size, size), pad_mask=True)]),
        backbone=backbone,  # returns one map [N, D, H/16, W/16], no tuple
        neck=dict(_delete_=True, type='SimpleFPN', backbone_channel=c, in_channels=[c // 4, c // 2, c, c],
                  out_channels=256, num_outs=5, norm_cfg=norm_cfg),
        rpn_head=dict(num_convs=2),
        roi_head=dict(bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg,
                                     num_classes=num_classes),
                      mask_head=dict(norm_cfg=norm_cfg, num_classes=num_classes)))))
    return cfg.model.to_dict()


def build_reference_detector(cfg: dict, init_weights: bool = True) -> nn.Module:
    """Build `cfg` under the private scope (plain 'ViT', 'SimpleFPN', 'LN2d' resolve to this file, the rest to
    mmdet), run init_weights as mmengine's Runner would, return the model in eval mode."""
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)  # child registries do not trigger mmdet's lazy imports
    with DefaultScope.overwrite_default_scope(SCOPE):
        model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))  # mmdet reads train_cfg.rpn
    if init_weights:
        with DefaultScope.overwrite_default_scope('mmdet'):  # initialisers are in mmengine's own registry
            model.init_weights()
    return model.eval()


if __name__ == '__main__':
    from mmdet.structures import DetDataSample
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel('WARNING')  # init_weights reports every parameter at INFO
    torch.manual_seed(0)
    cfg = reference_model_cfg('tiny')  # embed 64, depth 2, heads 2, window 4, global block 1, img 128
    cfg['test_cfg']['rcnn']['score_thr'] = 0.0  # random heads score ~1/81: keep boxes so the mask head runs
    detector = build_reference_detector(cfg)
    meta = dict(img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1., 1.))
    data = dict(inputs=[torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8) for _ in range(2)],
                data_samples=[DetDataSample(metainfo=meta) for _ in range(2)])
    with torch.no_grad():
        results = detector.test_step(data)
    print('predict:', [(len(r.pred_instances), tuple(r.pred_instances.masks.shape)) for r in results])
    keys = list(detector.state_dict())
    for group in dict.fromkeys(key.split('.')[0] for key in keys):
        members = [key for key in keys if key.split('.')[0] == group]
        print(f'{group} ({len(members)}):', ' '.join(members))
