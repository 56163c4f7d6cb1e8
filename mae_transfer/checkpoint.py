"""Read a ViT checkpoint in any common format and turn it into our canonical encoder state dict.

    state_dict, meta = load_pretrained_encoder('checkpoints/mae_pretrain_vit_base.pth')
    encoder.load_state_dict(state_dict)

Formats (see `checkpoint_formats.py` for the key schemes):

    official_mae  {'model': ...}: pretrain (encoder only), _full / _visualize (with decoder), fine-tuned
                  (fc_norm + head, no final norm)
    mae_transfer  mmengine {'state_dict': ..., 'meta': ...}: our pretraining (`mae.` prefix), downstream
                  models (`backbone.` prefix), and the files this module writes
    timm          bare timm ViT state dicts (.pth, .bin, .safetensors), with or without fc_norm / head
    mmpretrain    MAEViT / VisionTransformer (`backbone.layers.N.ln1`, `ffn.layers.0.0`, `neck.*` decoder)
    huggingface   ViTMAEModel / ViTModel / ViTMAEForPreTraining (`vit.` optional, query/key/value)

The result holds only encoder weights with canonical names, `pos_embed` always with its cls row
([1, 1 + grid_h * grid_w, D]), plus a `CheckpointMeta` saying what the file was. `.pth` / `.bin` files are
read with `safe_torch_load` (weights_only, allowlist); `.safetensors` with safetensors, and preferred when a
file of the same stem exists beside the `.pth`.
"""
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

from .checkpoint_formats import (BLOCK_KEY, CANONICAL_BLOCK_KEYS, CANONICAL_TOP_KEYS, RENAMERS,
                                 UnknownCheckpointFormatError, detect_scheme, dropped_kind, encoder_prefixes)
from .engine.safe_load import safe_torch_load
from .models.layers.pos_embed import get_2d_sincos_pos_embed

PathLike = Union[str, os.PathLike]
CHECKPOINT_FORMATS = ('official_mae', 'mae_transfer', 'timm', 'mmpretrain', 'huggingface')
FORMAT_SCHEMES = {'official_mae': 'canonical', 'mae_transfer': 'canonical', 'timm': 'canonical',
                  'mmpretrain': 'mmpretrain', 'huggingface': 'huggingface'}
TORCH_SUFFIXES = ('.pth', '.pt', '.bin', '.ckpt')
SAFETENSORS_SUFFIX = '.safetensors'
HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')  # what transformers' save_pretrained writes
# Marks the files this module writes, so that reading one back keeps its metadata (the grid above all).
META_MARKER = 'mae_transfer_encoder'

# (arch, embed_dim, depth, num_heads) of the named ViTs; our `tiny` (192 x 4) and DeiT-Ti (192 x 12) share a name.
KNOWN_ARCHS = (('tiny', 192, 4, 3), ('tiny', 192, 12, 3), ('small', 384, 12, 6), ('base', 768, 12, 12),
               ('large', 1024, 24, 16), ('huge', 1280, 32, 16))


@dataclass
class CheckpointMeta:
    """What a converted checkpoint holds and where it came from.

    Attributes:
        source_format: one of `CHECKPOINT_FORMATS`.
        embed_dim: token width.
        depth: number of blocks.
        patch_size: side of the (square) patches; (h, w) for non-square ones.
        grid_size: (grid_h, grid_w) of the pretraining position embedding.
        grid_source: how the grid was found: 'metadata' (written beside the weights), 'sincos' (the
            embedding is MAE's fixed sin-cos table of exactly that grid), 'square' (assumed), 'guess'
            (learned non-square embedding: the factorisation along which it is smoothest).
        arch: 'tiny', 'small', 'base', 'large' or 'huge' when embed_dim and depth match one, else None.
        num_heads: attention heads, when the arch or the file's metadata tells (weights do not).
        in_chans: image channels.
        mlp_ratio: MLP hidden width / embed_dim.
        qkv_bias: the qkv projections have biases.
        has_final_norm: the file has the final `norm` (fine-tuned official / avg-pool timm files have
            `fc_norm` instead, which is a head and dropped).
        source_prefix: where the encoder sat in the file ('', 'mae.', 'backbone.', 'vit.').
        dropped_keys: original names of everything left out (decoder, neck, heads, ...).
        extra_keys: canonical names of kept encoder keys beyond the plain ViT (e.g. rel-pos tables).
        converted_from: for files written by `save_encoder_checkpoint`, the format of the original file
            (their `dropped_keys` then include what that first conversion dropped).
    """
    source_format: str
    embed_dim: int
    depth: int
    patch_size: Union[int, Tuple[int, int]]
    grid_size: Tuple[int, int]
    grid_source: str
    arch: Optional[str] = None
    num_heads: Optional[int] = None
    in_chans: int = 3
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    has_final_norm: bool = True
    source_prefix: str = ''
    dropped_keys: List[str] = field(default_factory=list)
    extra_keys: List[str] = field(default_factory=list)
    converted_from: Optional[str] = None

    @property
    def img_size(self) -> Tuple[int, int]:
        """(height, width) of the pretraining images: grid times patch."""
        patch_h, patch_w = _pair(self.patch_size)
        return self.grid_size[0] * patch_h, self.grid_size[1] * patch_w

    @property
    def had_decoder(self) -> bool:
        """The file also held an MAE decoder (official _full / _visualize, our pretraining, mmpretrain, HF)."""
        return any(dropped_kind(key) == 'decoder' for key in self.dropped_keys)

    @property
    def had_head(self) -> bool:
        """The file also held a classifier / detector / segmentor head (fc_norm, head, roi_head, ...)."""
        return any(dropped_kind(key) == 'head' for key in self.dropped_keys)

    def to_dict(self) -> Dict[str, Any]:
        """Plain types only (lists, not tuples), for `torch.save` under weights_only and for JSON."""
        data = asdict(self)
        data['grid_size'] = list(self.grid_size)
        data['patch_size'] = list(self.patch_size) if isinstance(self.patch_size, tuple) else self.patch_size
        data['img_size'] = list(self.img_size)
        data[META_MARKER] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'CheckpointMeta':
        """Inverse of `to_dict`; unknown entries are ignored.

        Args:
            data: a dict written by `to_dict` (or decoded from safetensors metadata).
        """
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values['grid_size'] = tuple(values['grid_size'])
        if isinstance(values.get('patch_size'), list):
            values['patch_size'] = tuple(values['patch_size'])
        return cls(**values)

    def to_safetensors_metadata(self) -> Dict[str, str]:
        """safetensors metadata must map str to str: every value JSON-encoded under its own name."""
        return {'format': 'pt', **{key: json.dumps(value) for key, value in self.to_dict().items()}}

    @classmethod
    def from_safetensors_metadata(cls, metadata: Mapping[str, str]) -> Optional['CheckpointMeta']:
        """The meta of a file written by `save_encoder_checkpoint`, or None for any other safetensors file.

        Args:
            metadata: the header metadata of a safetensors file.
        """
        if META_MARKER not in metadata:
            return None
        return cls.from_dict({key: json.loads(value) for key, value in metadata.items() if key != 'format'})

    def summary(self) -> str:
        """One line for logs and the command line tools."""
        arch = self.arch or 'custom'
        heads = f' x {self.num_heads} heads' if self.num_heads else ''
        source = self.source_format + (f' (converted from {self.converted_from})' if self.converted_from else '')
        return (f'{source} checkpoint: ViT {arch} ({self.embed_dim}-d x {self.depth} blocks{heads}), '
                f'patch {self.patch_size}, grid {self.grid_size[0]}x{self.grid_size[1]} ({self.grid_source}), '
                f'image {self.img_size[0]}x{self.img_size[1]}'
                + ('' if self.has_final_norm else ', no final norm'))


def _pair(value: Union[int, Tuple[int, int], List[int]]) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


# ----------------------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------------------

def unwrap_checkpoint(checkpoint: Mapping[str, Any]) -> Tuple[Mapping[str, Any], str]:
    """(state dict, container key): official files keep weights under 'model', mmengine and timm training
    checkpoints under 'state_dict', some older ones under 'module'; a bare state dict has container ''.

    Args:
        checkpoint: what `torch.load` returned.
    """
    for container in ('model', 'state_dict', 'module'):
        inner = checkpoint.get(container)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner, container
    return checkpoint, ''


def convert_state_dict(checkpoint: Mapping[str, Any], format: str = 'auto',
                       hints: Optional[Mapping[str, Any]] = None) -> Tuple[Dict[str, torch.Tensor], CheckpointMeta]:
    """Canonical encoder state dict and metadata from a loaded checkpoint of any supported format.

    Args:
        checkpoint: a loaded checkpoint (`{'model': ...}`, `{'state_dict': ..., 'meta': ...}`) or a bare
            state dict.
        format: 'auto' or one of `CHECKPOINT_FORMATS` to skip detection.
        hints: facts the weights cannot tell, from metadata beside them: `grid_size`, `num_heads`.

    Returns:
        (state_dict, meta): canonical encoder weights (cls row always in `pos_embed`) and a `CheckpointMeta`.

    Raises:
        UnknownCheckpointFormatError: no known key scheme, or encoder weights that cannot be placed.
    """
    if not isinstance(checkpoint, Mapping):
        raise UnknownCheckpointFormatError(f'expected a dict of tensors, got {type(checkpoint).__name__}')
    if format != 'auto' and format not in CHECKPOINT_FORMATS:
        raise ValueError(f'unknown format {format!r}; choose auto or one of {CHECKPOINT_FORMATS}')
    hints = dict(hints or {})
    state_dict, container = unwrap_checkpoint(checkpoint)
    file_meta = checkpoint.get('meta') if container else None
    if isinstance(file_meta, Mapping) and file_meta.get(META_MARKER):
        hints = {**file_meta, **hints}  # a file we wrote: trust its grid and heads
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}

    if format == 'auto':
        found = detect_scheme(tensors)
        if found is None:
            raise UnknownCheckpointFormatError(_unknown_message(checkpoint, tensors))
        scheme, prefix = found
    else:
        scheme = FORMAT_SCHEMES[format]
        prefixes = encoder_prefixes(tensors, scheme)
        if not prefixes:
            raise UnknownCheckpointFormatError(
                f'not a {format} checkpoint: no key ends in {scheme!r} patch-embedding name. '
                + _unknown_message(checkpoint, tensors))
        prefix = prefixes[0]
    keys = RENAMERS[scheme](tensors, prefix)
    source_format = format if format != 'auto' else _format_label(scheme, container, prefix, checkpoint, hints)
    encoder = _ordered(keys.state_dict)
    meta = _describe(encoder, source_format, prefix, hints)
    meta.dropped_keys = keys.dropped
    meta.extra_keys = keys.extra
    if hints.get(META_MARKER):  # a file we wrote: keep its history
        meta.converted_from = hints.get('converted_from') or hints.get('source_format')
        meta.dropped_keys = list(hints.get('dropped_keys') or []) + keys.dropped
    if keys.extra:
        # block extras (ViTDet rel-pos tables) are normal in downstream files; anything else is unusual
        unusual = any(not BLOCK_KEY.match(key) for key in keys.extra)
        print_log(f'{meta.source_format} checkpoint: keeping {len(keys.extra)} encoder keys beyond the plain ViT '
                  f'(the model that loads them must know them): {keys.extra[:8]}', logger='current',
                  level=logging.WARNING if unusual else logging.INFO)
    return encoder, meta


def _format_label(scheme: str, container: str, prefix: str, checkpoint: Mapping[str, Any],
                  hints: Mapping[str, Any]) -> str:
    """Name the source of a file from its scheme and wrapping (the conversion does not depend on it)."""
    if scheme != 'canonical':
        return scheme
    if hints.get(META_MARKER):
        return 'mae_transfer'
    if container == 'model':
        return 'official_mae'
    if container == 'state_dict' and (prefix or isinstance(checkpoint.get('meta'), Mapping)):
        return 'mae_transfer'  # mmengine checkpoint of one of our models
    return 'timm'


def _unknown_message(checkpoint: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    shown = list(tensors)[:6] or [f'{k} ({type(v).__name__})' for k, v in list(checkpoint.items())[:6]]
    return ('cannot identify this checkpoint: no key names a ViT patch embedding in a known scheme '
            f'({", ".join(CHECKPOINT_FORMATS)}). First keys: {shown}'
            + (f' ... ({len(tensors)} tensors in all)' if len(tensors) > 6 else ''))


def _ordered(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Canonical order, whatever the file's (safetensors sorts keys by name): cls, pos, patch embed, blocks by
    index with their parameters in module order, final norm, then anything else in file order."""
    top = {key: rank for rank, key in enumerate(CANONICAL_TOP_KEYS)}
    in_block = {key: rank for rank, key in enumerate(CANONICAL_BLOCK_KEYS)}

    def rank(item: Tuple[int, str]) -> Tuple[int, int, int, int]:
        position, key = item
        block = BLOCK_KEY.match(key)
        if block:
            return 1, int(block.group(1)), in_block.get(block.group(2), len(in_block)), position
        if key in top:
            return (0 if top[key] < 4 else 2), top[key], 0, position  # norm.* (ranks 4, 5) after the blocks
        return 3, 0, 0, position

    return {key: state_dict[key] for _, key in sorted(enumerate(state_dict), key=rank)}


def _describe(encoder: Dict[str, torch.Tensor], source_format: str, prefix: str,
              hints: Mapping[str, Any]) -> CheckpointMeta:
    """Read the geometry off the weights; put `pos_embed` into its canonical [1, 1 + L, D] form in place."""
    for required in ('patch_embed.proj.weight', 'cls_token', 'pos_embed'):
        if required not in encoder:
            raise UnknownCheckpointFormatError(
                f'{source_format} checkpoint has no {required!r}; the mae_transfer ViT needs a patch embedding, '
                'a cls token and an absolute position embedding')
    other_tokens = [key for key in encoder if key.endswith('_token') and key != 'cls_token' and '.' not in key]
    if other_tokens:
        raise UnknownCheckpointFormatError(
            f'{source_format} checkpoint has extra prefix tokens {other_tokens} (distillation or register '
            'tokens); the mae_transfer ViT has only a cls token')
    proj = encoder['patch_embed.proj.weight']  # proj: [D, C, p_h, p_w]
    embed_dim, in_chans, patch_h, patch_w = proj.shape
    indices = sorted({int(m.group(1)) for k in encoder if (m := re.match(r'^blocks\.(\d+)\.', k))})
    if indices != list(range(len(indices))) or not indices:
        raise UnknownCheckpointFormatError(f'{source_format} checkpoint: blocks {indices} are not 0 .. N-1')
    depth = len(indices)
    fc1 = encoder.get('blocks.0.mlp.fc1.weight')  # fc1: [hidden, D]
    if encoder['cls_token'].numel() != embed_dim:
        raise UnknownCheckpointFormatError(
            f'cls_token {tuple(encoder["cls_token"].shape)} does not match the embedding width {embed_dim}')
    encoder['cls_token'] = encoder['cls_token'].reshape(1, 1, embed_dim)
    # only timm models (`no_embed_class=True`) store pos_embed without a cls row
    pos_embed, grid, grid_source = normalize_pos_embed(encoder['pos_embed'], embed_dim, hints.get('grid_size'),
                                                       may_lack_cls_row=source_format == 'timm')
    if grid_source == 'metadata' and hints.get('grid_source'):
        grid_source = hints['grid_source']  # a file we wrote: keep how the grid was first found
    encoder['pos_embed'] = pos_embed
    arch, default_heads = _known_arch(embed_dim, depth)
    return CheckpointMeta(
        source_format=source_format, embed_dim=int(embed_dim), depth=depth,
        patch_size=int(patch_h) if patch_h == patch_w else (int(patch_h), int(patch_w)),
        grid_size=grid, grid_source=grid_source, arch=arch,
        num_heads=hints.get('num_heads') or default_heads, in_chans=int(in_chans),
        mlp_ratio=fc1.shape[0] / embed_dim if fc1 is not None else 4.0,
        qkv_bias='blocks.0.attn.qkv.bias' in encoder, has_final_norm='norm.weight' in encoder,
        source_prefix=prefix)


def _known_arch(embed_dim: int, depth: int) -> Tuple[Optional[str], Optional[int]]:
    for arch, width, blocks, heads in KNOWN_ARCHS:
        if (width, blocks) == (embed_dim, depth):
            return arch, heads
    return None, None


# ----------------------------------------------------------------------------------------------------------
# Position embedding: cls row and grid
# ----------------------------------------------------------------------------------------------------------

def normalize_pos_embed(pos_embed: torch.Tensor, embed_dim: int, grid_hint: Optional[Tuple[int, int]] = None,
                        may_lack_cls_row: bool = False) -> Tuple[torch.Tensor, Tuple[int, int], str]:
    """Bring a position embedding into the canonical [1, 1 + L, D] form and find its grid.

    timm models built with `no_embed_class=True` store no row for the cls token (the token gets no position);
    a zero row is the same thing in our encoder, which adds `pos_embed[:, :1]` to the cls token.

    Args:
        pos_embed: [1, N, D] or [N, D].
        embed_dim: D.
        grid_hint: (h, w) from metadata, used when it fits.
        may_lack_cls_row: a perfect-square number of rows may mean a grid without cls row (timm files only:
            every other format always stores the cls row, and 1 + h * w may be a square, e.g. 1 + 3 * 5).

    Returns:
        (pos_embed [1, 1 + h * w, D], (h, w), grid_source) with grid_source as in `CheckpointMeta`.
    """
    pos_embed = pos_embed.reshape(1, -1, embed_dim)  # [1, N, D]
    num_tokens = pos_embed.shape[1]
    if num_tokens < 2:
        raise UnknownCheckpointFormatError(f'pos_embed {tuple(pos_embed.shape)} has no patch positions')
    if grid_hint is not None:
        hint = _pair(grid_hint)
        if hint[0] * hint[1] in (num_tokens - 1, num_tokens):
            return _with_cls_row(pos_embed, hint), hint, 'metadata'
    spatial = pos_embed[0, 1:]  # [L, D] assuming a cls row, as every format but some timm models has
    sincos = _sincos_grid(spatial, embed_dim)
    if sincos is not None:
        return pos_embed, sincos, 'sincos'
    if _is_square(num_tokens - 1):
        side = _isqrt(num_tokens - 1)
        return pos_embed, (side, side), 'square'
    if may_lack_cls_row and _is_square(num_tokens):  # no cls row (timm no_embed_class)
        side = _isqrt(num_tokens)
        return _with_cls_row(pos_embed, (side, side)), (side, side), 'square'
    grid = _smoothest_grid(spatial)
    print_log(f'pos_embed has {num_tokens - 1} patch positions, not a square grid, and no metadata says which '
              f'grid: guessing {grid[0]}x{grid[1]} (the layout along which it varies most smoothly).',
              logger='current', level=logging.WARNING)
    return pos_embed, grid, 'guess'


def _with_cls_row(pos_embed: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Prepend a zero cls row when `pos_embed` [1, N, D] has exactly grid_h * grid_w rows."""
    if pos_embed.shape[1] == grid[0] * grid[1]:
        return torch.cat([pos_embed.new_zeros(1, 1, pos_embed.shape[2]), pos_embed], dim=1)  # [1, 1 + L, D]
    return pos_embed


def _isqrt(n: int) -> int:
    return int(round(max(n, 0) ** 0.5))


def _is_square(n: int) -> bool:
    return n > 0 and _isqrt(n) ** 2 == n


def _factor_pairs(n: int) -> List[Tuple[int, int]]:
    return [(h, n // h) for h in range(1, n + 1) if n % h == 0]


def _sincos_grid(spatial: torch.Tensor, embed_dim: int) -> Optional[Tuple[int, int]]:
    """The grid whose fixed MAE sin-cos table `spatial` [L, D] is, if it is one (MAE pretraining files)."""
    if embed_dim % 4 or spatial.shape[0] == 0:
        return None
    # fp16 / bf16 tables round to ~1e-3 / 4e-3; tables of different grids differ by O(1)
    atol = 1e-4 if spatial.dtype in (torch.float32, torch.float64) else 1e-2
    values = spatial.float()
    # most square first: the usual answer, found with one table
    for grid in sorted(_factor_pairs(spatial.shape[0]), key=lambda hw: abs(hw[0] - hw[1])):
        table = get_2d_sincos_pos_embed(embed_dim, grid)  # [L, D]
        if torch.allclose(values, table, atol=atol, rtol=0.0):
            return grid
    return None


def _smoothest_grid(spatial: torch.Tensor) -> Tuple[int, int]:
    """The factorisation (h, w) of L whose neighbouring positions are most alike: learned embeddings vary
    smoothly over their true grid, so a wrong layout pairs up distant positions."""
    length, dim = spatial.shape
    pairs = [p for p in _factor_pairs(length) if 1 not in p] or _factor_pairs(length)
    values = spatial.float()

    def roughness(grid: Tuple[int, int]) -> float:
        table = values.reshape(grid[0], grid[1], dim)  # [h, w, D]
        diffs = [table[1:] - table[:-1], table[:, 1:] - table[:, :-1]]
        return sum(float(d.pow(2).sum()) for d in diffs) / sum(d.shape[0] * d.shape[1] for d in diffs)

    return min(pairs, key=roughness)


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------

def resolve_checkpoint_path(path: PathLike, prefer_safetensors: bool = True) -> Path:
    """The file to read for `path`.

    A `.safetensors` file of the same stem beside a `.pth` / `.bin` wins (no pickle involved, and it is
    what `tools/download_checkpoint.py` writes next to the download); a path without suffix is tried with
    each known suffix; a HuggingFace model directory gives its `model.safetensors` or `pytorch_model.bin`.

    Args:
        path: a file, a stem, or a HuggingFace model directory.
        prefer_safetensors: look for a sibling `.safetensors` first.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        for name in HF_WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f'{path} is a directory without model.safetensors or pytorch_model.bin')
    known_suffix = path.suffix in TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)
    stem = path.with_suffix('') if known_suffix else path
    if prefer_safetensors and path.suffix != SAFETENSORS_SUFFIX:
        sibling = stem.parent / (stem.name + SAFETENSORS_SUFFIX)
        if sibling.is_file():
            if path.is_file():
                print_log(f'Reading {sibling.name} instead of {path.name} (safetensors preferred).', logger='current')
            return sibling
    if path.is_file():
        return path
    if not known_suffix:
        for suffix in (SAFETENSORS_SUFFIX,) + TORCH_SUFFIXES:
            candidate = stem.parent / (stem.name + suffix)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f'checkpoint {path} does not exist')


def read_checkpoint_file(path: PathLike) -> Tuple[Mapping[str, Any], Dict[str, Any]]:
    """(loaded checkpoint, hints) of one file; never unpickles anything but allowlisted types.

    Args:
        path: a `.safetensors` file, or a `.pth` / `.pt` / `.bin` / `.ckpt` file for `safe_torch_load`.

    Returns:
        the checkpoint, and hints from metadata stored beside the weights (our own meta, or the
        `config.json` of a HuggingFace model directory).
    """
    path = Path(path)
    # only beside HF's own file names: a config.json next to other files may describe another model
    hf_file = path.name in HF_WEIGHT_FILES
    hints: Dict[str, Any] = _huggingface_config_hints(path.parent / 'config.json') if hf_file else {}
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(str(path), framework='pt') as handle:
            metadata = handle.metadata() or {}
        meta = CheckpointMeta.from_safetensors_metadata(metadata)
        if meta is not None:
            hints.update(asdict(meta), **{META_MARKER: True})
        return load_file(str(path), device='cpu'), hints
    return safe_torch_load(str(path), map_location='cpu'), hints


def _huggingface_config_hints(config_path: Path) -> Dict[str, Any]:
    """num_heads and grid from a transformers `config.json` (ViT / ViTMAE), when there is one."""
    if not config_path.is_file():
        return {}
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return {}
    hints: Dict[str, Any] = {}
    if isinstance(config.get('num_attention_heads'), int):
        hints['num_heads'] = config['num_attention_heads']
    image, patch = config.get('image_size'), config.get('patch_size')
    if image and patch:
        image_h, image_w = _pair(image)
        patch_h, patch_w = _pair(patch)
        hints['grid_size'] = (image_h // patch_h, image_w // patch_w)
    return hints


def load_pretrained_encoder(path: PathLike, format: str = 'auto',
                            prefer_safetensors: bool = True) -> Tuple[Dict[str, torch.Tensor], CheckpointMeta]:
    """Canonical encoder weights and metadata from a checkpoint file in any supported format.

    Args:
        path: the file (see `resolve_checkpoint_path` for stems, siblings and HF directories).
        format: 'auto' or one of `CHECKPOINT_FORMATS`.
        prefer_safetensors: read `X.safetensors` instead of `X.pth` when both exist.

    Returns:
        (state_dict, meta) as from `convert_state_dict`.
    """
    resolved = resolve_checkpoint_path(path, prefer_safetensors=prefer_safetensors)
    checkpoint, hints = read_checkpoint_file(resolved)
    try:
        state_dict, meta = convert_state_dict(checkpoint, format=format, hints=hints)
    except UnknownCheckpointFormatError as error:
        raise UnknownCheckpointFormatError(f'{resolved}: {error}') from error
    print_log(f'{resolved}: {meta.summary()}; {len(state_dict)} encoder tensors, {len(meta.dropped_keys)} '
              'keys dropped.', logger='current')
    return state_dict, meta


def save_encoder_checkpoint(state_dict: Mapping[str, torch.Tensor], meta: CheckpointMeta, path: PathLike) -> Path:
    """Write canonical weights + meta atomically: `.pth` as {'state_dict', 'meta'}, `.safetensors` with the
    meta as string metadata. A temporary file in the same folder is renamed over `path` only when complete,
    so an interrupted write never leaves a truncated checkpoint.

    Args:
        state_dict: canonical encoder weights.
        meta: their `CheckpointMeta`.
        path: destination ending in `.pth`, `.pt` or `.safetensors`.
    """
    path = Path(path)
    if path.suffix not in ('.pth', '.pt', SAFETENSORS_SUFFIX):
        raise ValueError(f'cannot write {path}: use a .pth, .pt or .safetensors name')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        if path.suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file
            save_file(_unshared(state_dict), str(tmp), metadata=meta.to_safetensors_metadata())
        else:
            torch.save({'state_dict': dict(state_dict), 'meta': meta.to_dict()}, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _unshared(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory or are not contiguous: copy those."""
    seen = set()
    result = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if tensor.numel() and storage in seen:
            tensor = tensor.clone()
            storage = tensor.untyped_storage().data_ptr()
        seen.add(storage)
        result[key] = tensor
    return result


__all__ = ['CHECKPOINT_FORMATS', 'CheckpointMeta', 'UnknownCheckpointFormatError', 'convert_state_dict',
           'load_pretrained_encoder', 'normalize_pos_embed', 'read_checkpoint_file', 'resolve_checkpoint_path',
           'save_encoder_checkpoint', 'unwrap_checkpoint']
