"""Turn a loaded checkpoint of any format into canonical encoder weights plus a `CheckpointMeta`.

    encoder, meta = convert_state_dict(torch.load(path, weights_only=True))

The result holds only encoder weights with canonical names (see `formats/`), `pos_embed` always with its
cls row ([1, 1 + grid_h * grid_w, D]), and a `CheckpointMeta` saying what the file was: its size (read off
the weights; the arch name from `mae_transfer.models.arch`), and its patch grid. The grid is found, in this
order, from:

    metadata  written beside the weights: an explicit hint, the meta of a file `save_encoder_checkpoint`
              wrote, the state-dict metadata every mae_transfer ViT records (`pos_embed_grid`, so our
              pretraining and downstream checkpoints always tell), a HuggingFace config.json
    sincos    the embedding is MAE's fixed sin-cos table of exactly that grid
    square    a learned embedding with a square number of positions (assumed square)
    guess     a learned non-square embedding: the factorisation along which it is smoothest (a warning)

`canonicalize` also keeps a canonical MAE decoder apart (for loading the MAE model), renames the rest of a
whole-model file (neck, heads) to our whole-model layout (`Canonical.parts`) and lists what this read dropped;
`adapt.load_weights` builds on it. It detects the format once (`formats.detect`) and uses only that format's
record: no table here knows any format.
"""
import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

from ..models.arch import find_arch, get_arch
from ..models.layers.pos_embed import GRID_METADATA_KEY, get_2d_sincos_pos_embed
from .formats import (BLOCK_KEY, CANONICAL_BLOCK_KEYS, CANONICAL_TOP_KEYS, CheckpointFormat,
                      UnknownCheckpointFormatError, detect, dropped_kind, encoder_prefixes, format_by_label,
                      format_labels, leading_kind, unwrap_checkpoint)

# Marks the files `save_encoder_checkpoint` writes, so that reading one back keeps its metadata (the grid above all).
META_MARKER = 'mae_transfer_encoder'


@dataclass
class CheckpointMeta:
    """What a converted checkpoint holds and where it came from.

    Attributes:
        source_format: one of `CHECKPOINT_FORMATS`.
        embed_dim: token width.
        depth: number of blocks.
        patch_size: side of the (square) patches; (h, w) for non-square ones.
        grid_size: (grid_h, grid_w) of the pretraining position embedding.
        grid_source: how the grid was found: 'metadata', 'sincos', 'square' or 'guess' (module docstring).
        arch: the name in `mae_transfer.models.arch.ARCHS` whose width and depth match ('tiny' is our
            192-d x 4 size, 'vit-ti' timm's 192-d x 12 one), else None.
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


@dataclass
class Canonical:
    """One checkpoint in canonical form.

    Attributes:
        encoder: canonical encoder weights (cls row always in `pos_embed`).
        meta: what the file was (`meta.dropped_keys` includes the history of a file we wrote).
        decoder: a canonical MAE decoder found beside the encoder (official full files, our pretraining), by
            canonical name; empty otherwise.
        dropped: original names of the keys this read left out of the encoder (the decoder's included).
        parts: every other tensor of the file that has a place in our whole-model layout (the ViT at
            `backbone.`: `neck.*`, `rpn_head.*`, `roi_head.*`, `decode_head.*`, `auxiliary_head.*`, `head.*`,
            `fc_norm.*`), by our name: keys outside the encoder's prefix by their name in the file (after the
            `prefix` option), heads under it (`fc_norm.*`, `head.*` of official fine-tuned files) without the
            prefix, then renamed by the format's `whole_model` (ViTPose `keypoint_head.*` -> `head.*`, ...).
            Neither the decoder nor buffers the model rebuilds are parts; their keys stay in `dropped`.
        parts_from: our name -> the key in the file, for each of `parts`.
    """
    encoder: Dict[str, torch.Tensor]
    meta: CheckpointMeta
    decoder: Dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    parts: Dict[str, torch.Tensor] = field(default_factory=dict)
    parts_from: Dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------------------------------------

def canonicalize(checkpoint: Mapping[str, Any], format: str = 'auto', hints: Optional[Mapping[str, Any]] = None,
                 prefix: Optional[str] = None) -> Canonical:
    """The canonical encoder, decoder and metadata of a loaded checkpoint of any supported format.

    Args:
        checkpoint: a loaded checkpoint (`{'model': ...}`, `{'state_dict': ..., 'meta': ...}`) or a bare
            state dict.
        format: 'auto' or one of `CHECKPOINT_FORMATS` to skip detection.
        hints: facts the weights cannot tell, from metadata beside them: `grid_size`, `num_heads`; they win
            over the file's own metadata.
        prefix: read only the keys under this prefix (mmengine's `Pretrained` option, e.g. 'backbone.'); the
            others count as dropped.

    Raises:
        UnknownCheckpointFormatError: no known key scheme, or encoder weights that cannot be placed.
    """
    if not isinstance(checkpoint, Mapping):
        raise UnknownCheckpointFormatError(f'expected a dict of tensors, got {type(checkpoint).__name__}')
    fmt = None if format == 'auto' else format_by_label(format)  # ValueError for an unknown label
    hints = dict(hints or {})
    state_dict, container = unwrap_checkpoint(checkpoint)
    file_meta = checkpoint.get('meta') if container else None
    ours = isinstance(file_meta, Mapping) and bool(file_meta.get(META_MARKER)) or bool(hints.get(META_MARKER))
    if isinstance(file_meta, Mapping) and file_meta.get(META_MARKER):
        hints = {**file_meta, **hints}  # a file we wrote: trust its grid and heads
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    outside: List[str] = []
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        outside = [k for k in tensors if not k.startswith(prefix)]
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    if fmt is None:
        found = detect(tensors)
        if found is None:
            raise UnknownCheckpointFormatError(_unknown_message(checkpoint, tensors))
        fmt, encoder_prefix = found
    else:
        prefixes = encoder_prefixes(tensors, fmt.marker)
        if not prefixes:
            raise UnknownCheckpointFormatError(
                f'not a {format} checkpoint: no key ends in its patch-embedding name {fmt.marker!r}. '
                + _unknown_message(checkpoint, tensors))
        encoder_prefix = prefixes[0]
    if 'grid_size' not in hints:
        recorded = _recorded_grid(state_dict, (prefix or '') + encoder_prefix)
        if recorded is not None:
            hints['grid_size'] = recorded
    keys = fmt.rename(tensors, encoder_prefix)
    if keys.grid_size is not None and 'grid_size' not in hints:
        hints['grid_size'] = keys.grid_size  # the format fixes its grid (ViTPose: 4:3 inputs)
    source_format = format if format != 'auto' else fmt.source_label(container, encoder_prefix, checkpoint, ours)
    encoder = _ordered(keys.state_dict)
    meta = _describe(encoder, source_format, encoder_prefix, hints,
                     may_lack_cls_row=source_format in fmt.without_cls_row)
    dropped = outside + [(prefix or '') + key for key in keys.dropped]
    meta.dropped_keys = list(dropped)
    meta.extra_keys = keys.extra
    if ours:  # a file we wrote: keep its history
        meta.converted_from = hints.get('converted_from') or hints.get('source_format')
        meta.dropped_keys = list(hints.get('dropped_keys') or []) + dropped
    if keys.extra:
        # block extras (ViTDet rel-pos tables) are normal in downstream files; anything else is unusual
        unusual = any(not BLOCK_KEY.match(key) for key in keys.extra)
        print_log(f'{meta.source_format} checkpoint: keeping {len(keys.extra)} encoder keys beyond the plain ViT '
                  f'(the model that loads them must know them): {keys.extra[:8]}', logger='current',
                  level=logging.WARNING if unusual else logging.INFO)
    parts, parts_from = whole_model_parts(fmt, tensors, encoder_prefix, prefix or '')
    return Canonical(encoder=encoder, meta=meta, decoder=keys.decoder, dropped=dropped, parts=parts,
                     parts_from=parts_from)


def whole_model_parts(fmt: CheckpointFormat, tensors: Mapping[str, torch.Tensor], encoder_prefix: str,
                      outer_prefix: str = '') -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """(parts, parts_from) of `Canonical`: the file's necks and heads in our whole-model layout.

    Args:
        fmt: the file's format.
        tensors: the state dict (under the `prefix` option, which is stripped).
        encoder_prefix: where the encoder sits in `tensors`.
        outer_prefix: the stripped `prefix` option, so that `parts_from` names keys as in the file.
    """
    named: Dict[str, torch.Tensor] = {}  # our name before the format's renaming -> tensor
    origin: Dict[str, str] = {}
    for key, value in tensors.items():
        if key.startswith(encoder_prefix):
            name = key[len(encoder_prefix):]  # under the encoder: only its heads (official fc_norm / head)
            if leading_kind(name) != 'head':
                continue
        elif dropped_kind(key) == 'decoder':  # an MAE decoder beside the encoder (HF decoder.*, mmpretrain neck)
            continue
        else:
            name = key
        named[name], origin[name] = value, outer_prefix + key
    by_tensor = {id(value): origin[name] for name, value in named.items()}
    parts = fmt.whole_model(named)
    parts_from = {name: by_tensor.get(id(value), origin.get(name, name)) for name, value in parts.items()}
    return parts, parts_from


def convert_state_dict(checkpoint: Mapping[str, Any], format: str = 'auto',
                       hints: Optional[Mapping[str, Any]] = None) -> Tuple[Dict[str, torch.Tensor], CheckpointMeta]:
    """Canonical encoder state dict and metadata from a loaded checkpoint of any supported format.

    Args:
        checkpoint: a loaded checkpoint or a bare state dict.
        format: 'auto' or one of `CHECKPOINT_FORMATS` to skip detection.
        hints: facts the weights cannot tell, from metadata beside them: `grid_size`, `num_heads`.

    Returns:
        (state_dict, meta): canonical encoder weights (cls row always in `pos_embed`) and a `CheckpointMeta`.

    Raises:
        UnknownCheckpointFormatError: no known key scheme, or encoder weights that cannot be placed.
    """
    result = canonicalize(checkpoint, format=format, hints=hints)
    return result.encoder, result.meta


def _recorded_grid(state_dict: Mapping[str, Any], prefix: str) -> Optional[Tuple[int, int]]:
    """The pos_embed grid a mae_transfer ViT recorded in its state-dict metadata (`_metadata`, which
    `torch.save` and mmengine keep) for the module at `prefix`, or None."""
    metadata = getattr(state_dict, '_metadata', None)
    if not isinstance(metadata, Mapping):
        return None
    entry = metadata.get(prefix[:-1] if prefix.endswith('.') else prefix)
    grid = entry.get(GRID_METADATA_KEY) if isinstance(entry, Mapping) else None
    if isinstance(grid, (list, tuple)) and len(grid) == 2 and all(isinstance(v, int) for v in grid):
        return int(grid[0]), int(grid[1])
    return None


def _unknown_message(checkpoint: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    shown = list(tensors)[:6] or [f'{k} ({type(v).__name__})' for k, v in list(checkpoint.items())[:6]]
    return ('cannot identify this checkpoint: no key names a ViT patch embedding in a known scheme '
            f'({", ".join(format_labels())}). First keys: {shown}'
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


def _describe(encoder: Dict[str, torch.Tensor], source_format: str, prefix: str, hints: Mapping[str, Any],
              may_lack_cls_row: bool = False) -> CheckpointMeta:
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
    pos_embed, grid, grid_source = normalize_pos_embed(encoder['pos_embed'], embed_dim, hints.get('grid_size'),
                                                       may_lack_cls_row=may_lack_cls_row)
    if grid_source == 'metadata' and hints.get('grid_source'):
        grid_source = hints['grid_source']  # a file we wrote: keep how the grid was first found
    encoder['pos_embed'] = pos_embed
    arch = find_arch(int(embed_dim), depth)
    return CheckpointMeta(
        source_format=source_format, embed_dim=int(embed_dim), depth=depth,
        patch_size=int(patch_h) if patch_h == patch_w else (int(patch_h), int(patch_w)),
        grid_size=grid, grid_source=grid_source, arch=arch,
        num_heads=hints.get('num_heads') or (get_arch(arch).num_heads if arch else None), in_chans=int(in_chans),
        mlp_ratio=fc1.shape[0] / embed_dim if fc1 is not None else 4.0,
        qkv_bias='blocks.0.attn.qkv.bias' in encoder, has_final_norm='norm.weight' in encoder,
        source_prefix=prefix)


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
        grid_hint: (h, w) from metadata, used when it fits (h * w rows after the cls row, or h * w rows and
            no cls row where that is allowed).
        may_lack_cls_row: a perfect-square number of rows may mean a grid without cls row (the labels in a
            format's `without_cls_row` only, timm: every other file always stores the cls row, and 1 + h * w may
            be a square, e.g. 1 + 8 * 10).

    Returns:
        (pos_embed [1, 1 + h * w, D], (h, w), grid_source) with grid_source as in `CheckpointMeta`.
    """
    pos_embed = pos_embed.reshape(1, -1, embed_dim)  # [1, N, D]
    num_tokens = pos_embed.shape[1]
    if num_tokens < 2:
        raise UnknownCheckpointFormatError(f'pos_embed {tuple(pos_embed.shape)} has no patch positions')
    if grid_hint is not None:
        hint = _pair(grid_hint)
        if hint[0] * hint[1] == num_tokens - 1 or (may_lack_cls_row and hint[0] * hint[1] == num_tokens):
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


__all__ = ['Canonical', 'CheckpointMeta', 'META_MARKER', 'canonicalize', 'convert_state_dict', 'normalize_pos_embed',
           'whole_model_parts']
