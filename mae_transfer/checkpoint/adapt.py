"""`load_weights`: the one function that puts checkpoint weights into a mae_transfer model.

    report = load_weights(model, 'checkpoints/mae_pretrain_vit_base.pth')

Every model loads through it, whole: a ViT of ours (`MAEViT`, `MaskedAutoencoderViT`), the pretrainer (its
`mae`), and every model whose ViT is its `backbone` (mmdet / mmseg models with our backbone, the pose estimator,
the classifier), neck and heads included. Every caller takes the same path (`mmengine_bridge` routes
`load_from`, mmengine's `load_checkpoint` and `init_cfg=dict(type='Pretrained')` here), whatever the file:

1. read it exactly as named (`files.read_checkpoint_file`: safetensors, a format's own reader, or
   `safe_torch_load`), or take an already loaded checkpoint;
2. `canonical.canonicalize`, the one format detection: rename the encoder to canonical keys, find the patch
   grid of `pos_embed` (metadata, sin-cos table, square, guess), keep a canonical MAE decoder apart, and rename
   the rest of a whole-model file (neck, heads) to our layout (`Canonical.parts`);
3. fit the encoder to the model's ViT: `pos_embed` resized (bicubic, cls row kept aside) from the checkpoint's
   real grid to the model's, never along a guessed one (pass `checkpoint_grid`); rel-pos tables of another
   length interpolated; a `decoder_pos_embed` of another grid not loaded (the model's own sin-cos table for its
   grid is what its decoder expects); any other shape mismatch is an error that names the keys;
4. load the parts into the modules of the same names (a shape mismatch is an error: another number of classes);
5. one `LoadReport` logged once: problems (missing, unexpected) as warnings, everything else as info.

What a model sets aside on purpose: a plain encoder (a backbone) sets aside decoders, heads, necks and keys
outside the encoder; a model with a decoder loads a canonical decoder and sets aside only necks and keys
outside. Keys a model has that no MAE checkpoint has (ViTDet rel-pos tables, layer scales) keep their
initialisation, as do the decoder when the file is encoder-only and a downstream model's neck and heads when the
file is encoder-only (fine-tuning starts there); all are reported as new by design. Before an evaluation
(`complete=True`) nothing may be left at its initialisation: `PartialCheckpointError` names the parts.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import nn

from ..models.layers.beit_attention import grid_of_table, rel_pos_bias_table_size, resize_rel_pos_bias_table
from ..models.layers.pos_embed import GridSize, grid_tuple, resize_pos_embed
from ..models.layers.window_attention import interpolate_rel_pos
from ..models.layers.vit import ViTEncoder
from ..utils.user_errors import UserError
from .canonical import Canonical, CheckpointMeta, canonicalize
from .files import PathLike, read_checkpoint_file, resolve_checkpoint_path
from .formats import UnknownCheckpointFormatError, dropped_kind, leading_kind

NEW_BY_DESIGN_SUFFIXES = ('rel_pos_h', 'rel_pos_w')  # ViTDet additions, zero-initialised
# BEiT-style relative position bias (zero-initialised) and layer scale (MAEViT's ADE20K options)
NEW_BY_DESIGN_SUFFIXES += ('relative_position_bias_table', 'ls1.gamma', 'ls2.gamma')
# reason in the report for each kind of key a model sets aside (`formats.dropped_kind`)
SET_ASIDE_REASONS = {'decoder': 'MAE decoder', 'head': 'heads', 'neck': 'neck', 'other': 'outside the encoder'}


class CheckpointMismatchError(ValueError, UserError):
    """The checkpoint's weights do not fit the model: another size, patch, decoder width or number of classes,
    or a pos_embed grid nothing records."""


class PartialCheckpointError(ValueError, UserError):
    """A model about to be evaluated would keep some trained part (neck, heads, encoder tables) at its
    initialisation: the checkpoint is not the whole model."""


@dataclass
class LoadReport:
    """What `load_weights` did.

    Attributes:
        source: the checkpoint's path, or 'the given checkpoint'.
        meta: what the checkpoint was (format, size, patch grid and how the grid was found).
        loaded_keys: model keys filled from the checkpoint.
        renamed_keys: model key -> the checkpoint's own name, for the neck and head keys renamed from the
            file's format (the encoder's renaming is the format's: `meta.source_format`).
        resized_keys: keys resized to the model's shapes (`pos_embed`, rel-pos tables).
        recomputed_keys: fixed sin-cos tables of another grid that were not loaded; the model keeps its own
            table for its grid (`decoder_pos_embed`).
        expected_missing_keys: model keys that are new by design and keep their initialisation: rel-pos
            tables, and the decoder when the checkpoint is encoder-only.
        new_modules: keys of a downstream model's neck and heads that an encoder-only checkpoint does not hold
            (new by design: fine-tuning starts there).
        missing_keys: other model keys absent from the checkpoint (a problem).
        unexpected_keys: checkpoint keys the model has no place for (a problem).
        dropped_keys: checkpoint keys set aside on purpose, by reason ('MAE decoder', 'heads', ...).
        encoder_only: the checkpoint holds no MAE decoder.
    """
    source: str
    meta: CheckpointMeta
    loaded_keys: List[str] = field(default_factory=list)
    renamed_keys: Dict[str, str] = field(default_factory=dict)
    resized_keys: List[str] = field(default_factory=list)
    recomputed_keys: List[str] = field(default_factory=list)
    expected_missing_keys: List[str] = field(default_factory=list)
    new_modules: List[str] = field(default_factory=list)
    missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)
    dropped_keys: Dict[str, List[str]] = field(default_factory=dict)
    encoder_only: bool = True

    @property
    def ok(self) -> bool:
        """Nothing is missing or unexpected beyond what the checkpoint kind explains."""
        return not self.missing_keys and not self.unexpected_keys

    def prefix(self, vit_prefix: str) -> None:
        """Put the model keys found in the ViT's names (`blocks.0...`) in the names of the model holding it."""
        for name in ('loaded_keys', 'resized_keys', 'recomputed_keys', 'expected_missing_keys', 'missing_keys'):
            setattr(self, name, [vit_prefix + key for key in getattr(self, name)])


def open_checkpoint(checkpoint: Union[PathLike, Mapping[str, Any]],
                    source: Optional[str] = None) -> Tuple[str, Mapping[str, Any], Dict[str, Any]]:
    """(the name messages use, the loaded checkpoint, hints read from the file) of a path or a loaded checkpoint.

    A path names itself; an already loaded checkpoint is `source`, or 'the given checkpoint'.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        loaded, hints = read_checkpoint_file(resolve_checkpoint_path(path, prefer_safetensors=False))
        return path, loaded, hints
    return source or 'the given checkpoint', checkpoint, {}


def find_vit(model: nn.Module) -> Tuple[str, Optional[nn.Module]]:
    """(prefix, module) of the outermost mae_transfer ViT in `model`: ('', model) for a ViT itself, ('backbone.',
    ...) for a detector, segmentor, pose estimator or classifier, ('mae.', ...) for the pretrainer; ('', None)
    for a model without one (a user's own backbone: mmengine's loading applies)."""
    for name, module in model.named_modules():  # pre-order: the outermost ViT comes first
        if isinstance(module, ViTEncoder):
            return (name + '.' if name else ''), module
    return '', None


def load_weights(model: nn.Module, checkpoint: Union[PathLike, Mapping[str, Any]], prefix: Optional[str] = None,
                 strict: bool = False, checkpoint_grid: Optional[GridSize] = None, format: str = 'auto',
                 log: bool = True, source: Optional[str] = None, hints: Optional[Mapping[str, Any]] = None,
                 complete: bool = False) -> LoadReport:
    """Load a checkpoint of any supported format into any mae_transfer model and log one report.

    The one way weights come in: the commands, the apis, `load_from`, mmengine's `load_checkpoint` and
    `init_cfg=dict(type='Pretrained', ...)` all call it (`mmengine_bridge`). The file's format is detected once
    (`canonicalize`); its encoder goes into the model's ViT, fitted to it (`pos_embed` and rel-pos tables
    resized); for a model whose ViT is its `backbone` (detector, segmentor, pose estimator, classifier) the
    rest of the file (`Canonical.parts`: neck and heads in our layout, renamed from the reference's) goes into
    the modules of the same names.

    Args:
        model: `MAEViT` / `MaskedAutoencoderViT` / any ViT of ours, or a model holding one (mmdet / mmseg models
            with our backbone, `TopdownPoseEstimator`, `ViTClassifier`, `MAEPretrainer`).
        checkpoint: a path (read as named: a `.safetensors` sibling is not swapped in; a HuggingFace model
            directory gives its weight file), or an already loaded checkpoint / state dict.
        prefix: take only the keys under this prefix (mmengine's `Pretrained` option); the encoder is found
            by its patch-embedding key otherwise, under whatever wrapper prefix (`mae.`, `backbone.`, ...).
        strict: raise `RuntimeError` when the report has missing or unexpected keys.
        checkpoint_grid: (h, w) patch grid of the checkpoint's `pos_embed`, for files that do not tell it
            (a learned, non-square table without metadata).
        format: 'auto' or one of `formats.CHECKPOINT_FORMATS`.
        log: log the report.
        source: how messages and the report name an already loaded checkpoint (a caller that read the file
            passes its path); 'the given checkpoint' when left out.
        hints: with an already loaded checkpoint, what `files.read_checkpoint_file` read beside its weights.
        complete: the model is about to be evaluated: raise `PartialCheckpointError` when any part of it (neck,
            heads, encoder tables) keeps its initial values.

    Returns:
        a `LoadReport`, keys in `model`'s names.

    Raises:
        UnknownCheckpointFormatError: the file is no ViT checkpoint we know.
        ValueError: the weights do not fit the model (another size, another number of classes), or the grid
            of its pos_embed cannot be known.
        PartialCheckpointError: `complete` and a part of the model was left at its initialisation.
    """
    vit_prefix, vit = find_vit(model)
    if vit is None:
        raise TypeError(f'load_weights loads mae_transfer models (a ViT of ours, or a model holding one), not a '
                        f'{type(model).__name__} without one')
    source, loaded, read_hints = open_checkpoint(checkpoint, source)
    hints = {**read_hints, **(hints or {})}
    if checkpoint_grid is not None:
        hints['grid_size'] = grid_tuple(checkpoint_grid)
    try:
        canonical = canonicalize(loaded, format=format, hints=hints, prefix=prefix)
    except UnknownCheckpointFormatError as error:
        raise UnknownCheckpointFormatError(f'{source}: {error}') from error
    if checkpoint_grid is not None and tuple(canonical.meta.grid_size) != grid_tuple(checkpoint_grid):
        raise ValueError(f'{source}: checkpoint_grid {grid_tuple(checkpoint_grid)} does not match the '
                         f'{canonical.encoder["pos_embed"].shape[1] - 1} patch positions of its pos_embed')

    report = _load_encoder(vit, canonical, prefix, source, trusted_grid=checkpoint_grid is not None)
    if vit_prefix == 'backbone.':  # the layout of every downstream model: place neck and heads too
        _load_parts(model, canonical, report)
    elif vit_prefix:
        report.prefix(vit_prefix)
    if log:
        _log_report(report, type(model).__name__, loaded, vit)
    if strict and not report.ok:
        raise RuntimeError(f'{source} does not match {type(model).__name__}: missing {report.missing_keys}, '
                           f'unexpected {report.unexpected_keys}')
    if complete:
        _refuse_partial(report, type(model).__name__, vit)
    return report


def _load_encoder(vit: nn.Module, canonical: Canonical, prefix: Optional[str], source: str,
                  trusted_grid: bool) -> LoadReport:
    """Fit the canonical encoder (and a decoder, for a model with one) to `vit` and load it; keys in `vit`'s names."""
    own = vit.state_dict()
    has_decoder = any(leading_kind(key) == 'decoder' for key in own)
    report = LoadReport(source=source, meta=canonical.meta,
                        encoder_only=not any(dropped_kind(key) == 'decoder' for key in canonical.dropped))
    state_dict = _select(canonical, prefix, has_decoder, report)
    _fit(state_dict, own, vit, canonical.meta, trusted_grid=trusted_grid, has_decoder=has_decoder, report=report)
    incompatible = vit.load_state_dict(state_dict, strict=False)
    for key in incompatible.missing_keys:
        if key in report.recomputed_keys:
            continue
        new_by_design = key.endswith(NEW_BY_DESIGN_SUFFIXES) or (
            report.encoder_only and leading_kind(key) == 'decoder')
        # a backbone without final norm (MAEViT final_norm=False) keeps `norm` unused: files without one fit it
        new_by_design = new_by_design or _unused_norm(key, vit)
        (report.expected_missing_keys if new_by_design else report.missing_keys).append(key)
    report.unexpected_keys.extend(incompatible.unexpected_keys)
    report.loaded_keys = [key for key in state_dict if key in own]
    return report


def _load_parts(model: nn.Module, canonical: Canonical, report: LoadReport) -> None:
    """Load the file's neck and heads (`canonical.parts`, our names) into `model`, whose ViT is `backbone`, and
    complete `report` in the model's names. A model part the file does not hold is new by design when the file
    is encoder-only (fine-tuning starts there) and missing otherwise."""
    report.prefix('backbone.')
    report.unexpected_keys = ['backbone.' + key for key in report.unexpected_keys]  # encoder keys, canonical names
    own = {key: value for key, value in model.state_dict().items() if not key.startswith('backbone.')}
    placed: Dict[str, torch.Tensor] = {}
    for name, value in canonical.parts.items():
        original = canonical.parts_from.get(name, name)
        if name not in own:
            report.unexpected_keys.append(original)
        elif value.shape != own[name].shape:
            raise CheckpointMismatchError(f'{report.source}: {original} {tuple(value.shape)} does not fit {name} '
                             f'{tuple(own[name].shape)} of {type(model).__name__} (another number of classes, '
                             'channels or another head?)')
        else:
            placed[name] = value
            if original != name:
                report.renamed_keys[name] = original
    model.load_state_dict(placed, strict=False)
    taken = {canonical.parts_from.get(name, name) for name in canonical.parts}
    for reason in list(report.dropped_keys):  # what the file's parts became is no longer set aside
        report.dropped_keys[reason] = [key for key in report.dropped_keys[reason] if key not in taken]
        if not report.dropped_keys[reason]:
            del report.dropped_keys[reason]
    report.loaded_keys += list(placed)
    absent = [key for key in own if key not in placed]
    if canonical.parts:
        report.missing_keys += absent
    else:  # an encoder-only file: the neck and heads start from their initialisation, as fine-tuning expects
        report.new_modules += absent


def _unused_norm(key: str, vit: nn.Module) -> bool:
    """`key` is the final norm of a ViT that does not apply it (final_norm=False: global pooling, ViTDet)."""
    return key.split('.', 1)[0] == 'norm' and getattr(vit, 'final_norm', True) is False


def _refuse_partial(report: LoadReport, model_name: str, vit: nn.Module) -> None:
    """Raise `PartialCheckpointError` when any trained part of the model kept its initial values."""
    left = [key for key in report.missing_keys + report.expected_missing_keys + report.new_modules
            if not _unused_norm(key.replace('backbone.', '', 1), vit)]
    if not left:
        return
    parts = sorted({_part_name(key) for key in left})
    instead = sorted({_part_name(key) for key in report.unexpected_keys} - {'backbone'})
    other_task = (f'; it holds {", ".join(instead)} instead, which this model does not have (a checkpoint of '
                  'another task?)' if instead else '')
    raise PartialCheckpointError(
        f'{report.source} ({report.meta.source_format} checkpoint) leaves {", ".join(parts)} of the {model_name} '
        f'at their initial values ({len(left)} tensors){other_task}: its results would be those of an untrained '
        'model. Give the checkpoint of the whole trained model, or --allow-partial to go on anyway')


def _part_name(key: str) -> str:
    """The part of a model a key belongs to: 'backbone', 'neck', 'rpn_head', 'roi_head.mask_head', 'head'."""
    parts = key.split('.')
    return '.'.join(parts[:2]) if len(parts) > 2 and parts[1].endswith('_head') else parts[0]

def _select(canonical: Canonical, prefix: Optional[str], has_decoder: bool,
            report: LoadReport) -> Dict[str, torch.Tensor]:
    """The tensors to load: the encoder, plus a canonical decoder for a model that has one; every other key
    of the checkpoint is set aside by reason (what the model cannot hold by design) or unexpected."""
    state_dict = dict(canonical.encoder)
    placed = set()
    if has_decoder:
        state_dict.update(canonical.decoder)
        full_prefix = (prefix if not prefix or prefix.endswith('.') else prefix + '.') or ''
        placed = {full_prefix + canonical.meta.source_prefix + name for name in canonical.decoder}
    set_aside = ('neck', 'other') if has_decoder else tuple(SET_ASIDE_REASONS)
    for key in canonical.dropped:
        if key in placed:
            continue
        kind = dropped_kind(key)
        if kind in set_aside:
            report.dropped_keys.setdefault(SET_ASIDE_REASONS[kind], []).append(key)
        else:
            report.unexpected_keys.append(key)
    return state_dict


def _fit(state_dict: Dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], model: nn.Module,
         meta: CheckpointMeta, trusted_grid: bool, has_decoder: bool, report: LoadReport) -> None:
    """Resize `pos_embed` and rel-pos tables in place to the model's shapes, leave out a `decoder_pos_embed`
    of another grid; raise on any other shape mismatch."""
    model_grid = grid_tuple(model.grid_size)
    other_grid = tuple(meta.grid_size) != model_grid
    if other_grid:
        if meta.grid_source == 'guess' and not trusted_grid:
            raise CheckpointMismatchError(
                f'{report.source}: its pos_embed has {meta.grid_size[0] * meta.grid_size[1]} patch positions, not '
                f'a square, and nothing records their grid (a guess would be {meta.grid_size[0]}x'
                f'{meta.grid_size[1]}); pass checkpoint_grid=(h, w) (in an init_cfg too) to resize it to the '
                f'model grid {model_grid[0]}x{model_grid[1]}')
        pos_embed = state_dict['pos_embed']  # pos_embed: [1, 1 + h * w, D], cls row first
        state_dict['pos_embed'] = resize_pos_embed(pos_embed, model_grid, old_grid=meta.grid_size,
                                                   num_prefix_tokens=1)  # [1, 1 + H * W, D]
        report.resized_keys.append('pos_embed')
    for key, value in state_dict.items():
        if key.endswith('relative_position_bias_table') and key in own and value.shape != own[key].shape:
            # BEiT table [(2h-1)(2w-1) + 3, heads]: of the checkpoint's pos_embed grid, else of a square grid
            rows = value.shape[0]
            old_grid = meta.grid_size if rel_pos_bias_table_size(meta.grid_size) == rows else grid_of_table(rows)
            state_dict[key] = resize_rel_pos_bias_table(value, old_grid, model_grid)
            report.resized_keys.append(key)
        elif (key.endswith(NEW_BY_DESIGN_SUFFIXES) and key in own and value.shape != own[key].shape
                and value.shape[1:] == own[key].shape[1:]):
            state_dict[key] = interpolate_rel_pos(value.float(), own[key].shape[0]).to(value.dtype)
            report.resized_keys.append(key)
    if has_decoder and 'decoder_pos_embed' in state_dict and 'decoder_pos_embed' in own:
        if state_dict['decoder_pos_embed'].shape != own['decoder_pos_embed'].shape or other_grid:
            del state_dict['decoder_pos_embed']
            report.recomputed_keys.append('decoder_pos_embed')
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        noun = 'model' if has_decoder else 'backbone'
        raise CheckpointMismatchError(
            f'{report.source} holds {meta.summary()}, which does not fit this {noun}: ViT '
            f'{getattr(model, "embed_dim", "?")}-d x {len(getattr(model, "blocks", ()))} blocks, patch '
            f'{getattr(model, "patch_size", "?")} (another arch, patch size or decoder width?); '
            f'{len(mismatched)} tensors of other shapes: {_short(mismatched, 3)}. Use a config of the '
            "checkpoint's size, or a checkpoint of the config's")


def _short(keys: List[str], limit: int = 8) -> str:
    return ', '.join(keys[:limit]) + (f', ... ({len(keys)} in all)' if len(keys) > limit else '')


def _log_report(report: LoadReport, model_name: str, checkpoint: Mapping[str, Any], model: nn.Module) -> None:
    """Say what was loaded, once: problems as warnings, expected gaps as info, no empty sections."""
    args = checkpoint.get('args') if isinstance(checkpoint, Mapping) else None
    trained_as = f', trained as {args.model}' if getattr(args, 'model', None) else ''
    print_log(f'{model_name}: loaded {len(report.loaded_keys)} tensors from {report.source} '
              f'({report.meta.summary()}{trained_as})'
              + (f'; resized {report.resized_keys}' if report.resized_keys else ''), logger='current')
    if report.renamed_keys:
        pairs = [f'{ours} <- {theirs}' for ours, theirs in report.renamed_keys.items()]
        print_log(f'{model_name}: renamed {len(pairs)} neck / head keys from {report.meta.source_format}: '
                  f'{_short(pairs, 4)}', logger='current')
    for reason, keys in report.dropped_keys.items():
        print_log(f'{model_name}: set aside {len(keys)} checkpoint keys ({reason}): {_short(keys)}',
                  logger='current')
    new_by_design = [k for k in report.expected_missing_keys if k.endswith(NEW_BY_DESIGN_SUFFIXES)]
    if new_by_design:
        print_log(f'{model_name}: {len(new_by_design)} keys are new by design and keep their initialisation '
                  f'(rel-pos tables, zero; layer scales, their init value): {_short(new_by_design)}',
                  logger='current')
    unused_norm = [k for k in report.expected_missing_keys if _unused_norm(k.replace('backbone.', '', 1), model)]
    if unused_norm:
        print_log(f'{model_name}: {unused_norm} are not in the file and keep their initialisation; the backbone does '
                  'not use its final norm (final_norm=False)', logger='current')
    decoder = [k for k in report.expected_missing_keys if k not in new_by_design and k not in unused_norm]
    if decoder:
        print_log(f'{model_name}: encoder-only checkpoint: {len(decoder)} decoder keys are not in the file, as '
                  f'expected; the decoder keeps its fresh initialisation: {_short(decoder)}', logger='current')
    if report.new_modules:
        modules = sorted({_part_name(key) for key in report.new_modules})
        print_log(f'{model_name}: encoder-only checkpoint: {", ".join(modules)} ({len(report.new_modules)} tensors) '
                  'are new by design and keep their initialisation', logger='current')
    if report.recomputed_keys:
        print_log(f'{model_name}: kept its own sin-cos table for the model grid instead of the checkpoint\'s: '
                  f'{report.recomputed_keys}', logger='current')
    if report.missing_keys:
        print_log(f'{model_name}: MISSING from {report.source}, left as initialised: {report.missing_keys}',
                  logger='current', level=logging.WARNING)
    if report.unexpected_keys:
        print_log(f'{model_name}: UNEXPECTED keys in {report.source}, ignored: {report.unexpected_keys}',
                  logger='current', level=logging.WARNING)
    trained_norm_pix = getattr(args, 'norm_pix_loss', None)
    model_norm_pix = getattr(model, 'norm_pix_loss', None)
    if trained_norm_pix is not None and model_norm_pix is not None and trained_norm_pix != model_norm_pix:
        print_log(f'{model_name}: the checkpoint was trained with norm_pix_loss={trained_norm_pix} but the model '
                  f'has norm_pix_loss={model_norm_pix}: reconstructions will be on another scale.',
                  logger='current', level=logging.WARNING)


__all__ = ['CheckpointMismatchError', 'LoadReport', 'NEW_BY_DESIGN_SUFFIXES', 'PartialCheckpointError', 'find_vit',
           'load_weights']
