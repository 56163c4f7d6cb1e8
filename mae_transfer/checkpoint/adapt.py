"""`load_weights`: the one function that puts checkpoint weights into a mae_transfer model.

    report = load_weights(model, 'checkpoints/mae_pretrain_vit_base.pth')

Every model loads through it: the MAE model (`MaskedAutoencoderViT`, encoder and decoder), `MAEViT` (its
`init_cfg=dict(type='Pretrained', ...)`), the classifier and the pose estimator through their MAEViT, and
`MAEPretrainer` through its `mae` model. Every file takes the same path, whatever its suffix or format:

1. read it exactly as named (`files.read_checkpoint_file`: safetensors, or `safe_torch_load`), or take an
   already loaded checkpoint;
2. `canonical.canonicalize`: detect the format, rename to canonical keys, find the patch grid of `pos_embed`
   (metadata, sin-cos table, square, guess) and keep a canonical MAE decoder apart;
3. fit it to the model: `pos_embed` resized (bicubic, cls row kept aside) from the checkpoint's real grid to
   the model's, never along a guessed one (pass `checkpoint_grid`); rel-pos tables of another length
   interpolated; a `decoder_pos_embed` of another grid not loaded (the model's own sin-cos table for its grid
   is what its decoder expects); any other shape mismatch is an error that names the keys;
4. `load_state_dict(strict=False)`, and one `LoadReport` logged once: problems (missing, unexpected) as
   warnings, everything else as info, no empty sections.

What a model sets aside on purpose: a plain encoder (a backbone) sets aside decoders, heads, necks and keys
outside the encoder; a model with a decoder loads a canonical decoder and sets aside only necks and keys
outside, so a head in a file loaded into the MAE model is unexpected (a fine-tuned classifier is no MAE).
Keys a model has that no MAE checkpoint has (ViTDet rel-pos tables) keep their zero initialisation, as do the
decoder's keys when the file is encoder-only; both are reported as expected.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import initialize
from torch import nn

from ..models.layers.beit_attention import grid_of_table, rel_pos_bias_table_size, resize_rel_pos_bias_table
from ..models.layers.pos_embed import GridSize, grid_tuple, resize_pos_embed
from ..models.layers.window_attention import interpolate_rel_pos
from .canonical import Canonical, CheckpointMeta, canonicalize
from .files import PathLike, read_checkpoint_file, resolve_checkpoint_path
from .formats import UnknownCheckpointFormatError, dropped_kind, leading_kind, split_classifier_head
from .formats import detect_scheme

NEW_BY_DESIGN_SUFFIXES = ('rel_pos_h', 'rel_pos_w')  # ViTDet additions, zero-initialised
# BEiT-style relative position bias (zero-initialised) and layer scale (MAEViT's ADE20K options)
NEW_BY_DESIGN_SUFFIXES += ('relative_position_bias_table', 'ls1.gamma', 'ls2.gamma')
# reason in the report for each kind of key a model sets aside (`formats.dropped_kind`)
SET_ASIDE_REASONS = {'decoder': 'MAE decoder', 'head': 'heads', 'neck': 'neck', 'other': 'outside the encoder'}


@dataclass
class LoadReport:
    """What `load_weights` did.

    Attributes:
        source: the checkpoint's path, or 'the given checkpoint'.
        meta: what the checkpoint was (format, size, patch grid and how the grid was found).
        loaded_keys: model keys filled from the checkpoint.
        resized_keys: keys resized to the model's shapes (`pos_embed`, rel-pos tables).
        recomputed_keys: fixed sin-cos tables of another grid that were not loaded; the model keeps its own
            table for its grid (`decoder_pos_embed`).
        expected_missing_keys: model keys that are new by design and keep their initialisation: rel-pos
            tables, and the decoder when the checkpoint is encoder-only.
        missing_keys: other model keys absent from the checkpoint (a problem).
        unexpected_keys: checkpoint keys the model has no place for (a problem).
        dropped_keys: checkpoint keys set aside on purpose, by reason ('MAE decoder', 'heads', ...).
        encoder_only: the checkpoint holds no MAE decoder.
    """
    source: str
    meta: CheckpointMeta
    loaded_keys: List[str] = field(default_factory=list)
    resized_keys: List[str] = field(default_factory=list)
    recomputed_keys: List[str] = field(default_factory=list)
    expected_missing_keys: List[str] = field(default_factory=list)
    missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)
    dropped_keys: Dict[str, List[str]] = field(default_factory=dict)
    encoder_only: bool = True

    @property
    def ok(self) -> bool:
        """Nothing is missing or unexpected beyond what the checkpoint kind explains."""
        return not self.missing_keys and not self.unexpected_keys


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


def load_weights(model: nn.Module, checkpoint: Union[PathLike, Mapping[str, Any]], prefix: Optional[str] = None,
                 strict: bool = False, checkpoint_grid: Optional[GridSize] = None,
                 format: str = 'auto', log: bool = True, source: Optional[str] = None) -> LoadReport:
    """Load a checkpoint of any supported format into a mae_transfer ViT and log what happened.

    Args:
        model: a `ViTEncoder`: `MAEViT`, `MaskedAutoencoderViT`, ... (for a wrapper, pass its ViT: a
            classifier's or pose estimator's `backbone`, a pretrainer's `mae`).
        checkpoint: a path (read as named: a `.safetensors` sibling is not swapped in; a HuggingFace model
            directory gives its weight file), or an already loaded checkpoint / state dict.
        prefix: take only the keys under this prefix (mmengine's `Pretrained` option); the encoder is found
            by its patch-embedding key otherwise, under whatever wrapper prefix (`mae.`, `backbone.`, ...).
        strict: raise `RuntimeError` when the report has missing or unexpected keys.
        checkpoint_grid: (h, w) patch grid of the checkpoint's `pos_embed`, for files that do not tell it
            (a learned, non-square table without metadata).
        format: 'auto' or one of `formats.CHECKPOINT_FORMATS`.
        log: log the report (False for a caller that completes it and logs it: `load_classifier_weights`).
        source: how messages and the report name an already loaded checkpoint (a caller that read the file
            passes its path); 'the given checkpoint' when left out.

    Returns:
        a `LoadReport`.

    Raises:
        UnknownCheckpointFormatError: the file is no ViT checkpoint we know.
        ValueError: the weights do not fit the model (another size), or its grid cannot be known.
    """
    own = model.state_dict()
    if 'pos_embed' not in own or not hasattr(model, 'grid_size'):
        raise TypeError(f'load_weights loads a ViT (a model with pos_embed and grid_size), not a '
                        f'{type(model).__name__}: pass its ViT (backbone, mae)')
    source, loaded, hints = open_checkpoint(checkpoint, source)
    if checkpoint_grid is not None:
        hints['grid_size'] = grid_tuple(checkpoint_grid)
    try:
        canonical = canonicalize(loaded, format=format, hints=hints, prefix=prefix)
    except UnknownCheckpointFormatError as error:
        raise UnknownCheckpointFormatError(f'{source}: {error}') from error
    if checkpoint_grid is not None and tuple(canonical.meta.grid_size) != grid_tuple(checkpoint_grid):
        raise ValueError(f'{source}: checkpoint_grid {grid_tuple(checkpoint_grid)} does not match the '
                         f'{canonical.encoder["pos_embed"].shape[1] - 1} patch positions of its pos_embed')

    has_decoder = any(leading_kind(key) == 'decoder' for key in own)
    report = LoadReport(source=source, meta=canonical.meta,
                        encoder_only=not any(dropped_kind(key) == 'decoder' for key in canonical.dropped))
    state_dict = _select(canonical, prefix, has_decoder, report)
    _fit(state_dict, own, model, canonical.meta, trusted_grid=checkpoint_grid is not None, has_decoder=has_decoder,
         report=report)

    incompatible = model.load_state_dict(state_dict, strict=False)
    for key in incompatible.missing_keys:
        if key in report.recomputed_keys:
            continue
        new_by_design = key.endswith(NEW_BY_DESIGN_SUFFIXES) or (
            report.encoder_only and leading_kind(key) == 'decoder')
        # a backbone without final norm (MAEViT final_norm=False) keeps `norm` unused: files without one fit it
        new_by_design = new_by_design or (key.startswith('norm.') and getattr(model, 'final_norm', True) is False)
        (report.expected_missing_keys if new_by_design else report.missing_keys).append(key)
    report.unexpected_keys.extend(incompatible.unexpected_keys)
    report.loaded_keys = [key for key in state_dict if key in own]
    if log:
        _log_report(report, type(model).__name__, loaded, model)
    if strict and not report.ok:
        raise RuntimeError(f'{source} does not match {type(model).__name__}: missing {report.missing_keys}, '
                           f'unexpected {report.unexpected_keys}')
    return report


def load_classifier_weights(classifier: nn.Module, checkpoint: Union[PathLike, Mapping[str, Any]],
                            strict: bool = False, format: str = 'auto') -> LoadReport:
    """Load a whole image classifier, encoder and head, and log one report of every key.

    The encoder goes into `classifier.backbone` through `load_weights` (any format, `pos_embed` resized); the
    head (`formats.split_classifier_head`: canonical `fc_norm.*` / `head.*`) into the classifier's modules of
    the same names. Reads our `ViTClassifier` checkpoints, the official fine-tuned MAE files
    (`mae_finetuned_vit_*.pth`: encoder, `fc_norm`, `head`, no final `norm`; linear-probe files with their
    BatchNorm buffers) and timm `VisionTransformer` classifiers (global pooling: `fc_norm` + `head`; token
    pooling: `norm` + `head`, for a classifier with pool='cls').

    Args:
        classifier: a model with a ViT `backbone` and its head modules (`ViTClassifier`).
        checkpoint: a path or an already loaded checkpoint / state dict.
        strict: raise `RuntimeError` when a key is missing or unexpected (a random head evaluated).
        format: 'auto' or one of `formats.CHECKPOINT_FORMATS`, for the encoder.

    Returns:
        a `LoadReport` in the classifier's names (`backbone.*`, `fc_norm.*`, `head.*`); unexpected keys are
        the checkpoint's (canonical names for the encoder).

    Raises:
        ValueError: the head does not fit (another number of classes) or the encoder does not.
    """
    source, loaded, hints = open_checkpoint(checkpoint)
    # load_weights names the checkpoint as we do in its errors (each starts with `source: `) and in the report
    report = load_weights(classifier.backbone, loaded, checkpoint_grid=hints.get('grid_size'), format=format,
                          log=False, source=source)
    own = classifier.state_dict()
    head = split_classifier_head(loaded)
    placed: Dict[str, torch.Tensor] = {}
    for name, (key, value) in head.items():
        if name not in own:  # e.g. fc_norm of a global-pool file in a cls-token classifier
            report.unexpected_keys.append(key)
        elif value.shape != own[name].shape:
            raise ValueError(f'{source}: the classifier head does not fit: {key} {tuple(value.shape)} vs model '
                             f'{name} {tuple(own[name].shape)} (another num_classes?)')
        else:
            placed[name] = value
    classifier.load_state_dict(placed, strict=False)
    head_keys = {key for key, _ in head.values()}
    for reason in list(report.dropped_keys):
        report.dropped_keys[reason] = [key for key in report.dropped_keys[reason] if key not in head_keys]
        if not report.dropped_keys[reason]:
            del report.dropped_keys[reason]

    def prefixed(keys: List[str]) -> List[str]:
        return ['backbone.' + key for key in keys]

    report.loaded_keys = prefixed(report.loaded_keys) + list(placed)
    report.resized_keys = prefixed(report.resized_keys)
    report.recomputed_keys = prefixed(report.recomputed_keys)
    report.expected_missing_keys = prefixed(report.expected_missing_keys)
    report.missing_keys = prefixed(report.missing_keys) + [
        key for key in own if not key.startswith('backbone.') and key not in placed]
    # a backbone that does not apply its final norm (global pooling uses fc_norm) keeps `norm` by name only:
    # official fine-tuned and timm avg-pool files have none, and nothing computed depends on it
    unused = [key for key in report.missing_keys if key.startswith('backbone.norm.')
              and getattr(classifier.backbone, 'final_norm', True) is False]
    report.missing_keys = [key for key in report.missing_keys if key not in unused]
    _log_report(report, type(classifier).__name__, loaded, classifier.backbone)
    if unused:
        print_log(f'{type(classifier).__name__}: {unused} are not in {source} and keep their initialisation; the '
                  'model does not use them (global pooling applies fc_norm instead of the final norm)',
                  logger='current')
    if strict and not report.ok:
        raise RuntimeError(f'{source} does not match {type(classifier).__name__}: missing {report.missing_keys}, '
                           f'unexpected {report.unexpected_keys}')
    return report


def apply_init_cfg(module: nn.Module, vit: nn.Module) -> bool:
    """Run `module.init_cfg` with its `Pretrained` entries loaded into `vit` by `load_weights`.

    The other initialisers run first, through mmengine (its order: pretrained weights last); then each
    `dict(type='Pretrained', checkpoint=PATH[, prefix=...][, checkpoint_grid=(h, w)])` is loaded.

    Args:
        module: an mmengine module with an `init_cfg` (`MAEViT`, `MAEPretrainer`).
        vit: the ViT inside it that takes the weights (the module itself, or its `mae`).

    Returns:
        False when `init_cfg` has no Pretrained entry: nothing was done, the module's default `init_weights`
        applies.
    """
    init_cfg = getattr(module, 'init_cfg', None)
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg] if init_cfg else []
    pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
    if not pretrained:
        return False
    others = [cfg for cfg in cfgs if cfg.get('type') != 'Pretrained']
    if others:
        initialize(module, others)
    for cfg in pretrained:
        load_weights(vit, cfg['checkpoint'], prefix=cfg.get('prefix'), checkpoint_grid=cfg.get('checkpoint_grid'))
    return True


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
            raise ValueError(
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
        raise ValueError(f'{report.source} does not fit this {noun} (another arch, patch size or decoder width?):'
                         '\n  ' + '\n  '.join(mismatched))


def convert_backbone_keys_hook(module: nn.Module, state_dict: Dict[str, Any], prefix: str, *args: Any) -> None:
    """A `load_state_dict` pre-hook of `MAEViT`: backbone keys of a whole-model file in another scheme are renamed
    in place to ours, so that a whole segmentor / detector checkpoint of the reference code loads as it is
    (`tools/test.py OUR_CONFIG mmseg_upernet.pth`, `load_from`); the heads' keys are the framework's own and
    are not touched.

    Keys under `prefix` in a known non-canonical scheme (`formats.detect_scheme`: mmseg BEiT / MAE,
    mmpretrain, HuggingFace) go through `canonicalize` and `_fit` as in `load_weights` (pos_embed and rel-pos
    bias tables resized to the model's grid; other shape mismatches raise) and replace the original keys.
    Canonical files (ours, official MAE) and files without keys under `prefix` pass through untouched. A
    final `norm` the backbone does not use (final_norm=False) and the file does not have keeps the model's own
    values, so that mmengine does not report it missing.
    """
    names = {key[len(prefix):]: key for key in state_dict if key.startswith(prefix)}
    found = detect_scheme(names) if names else None
    if found is None or found[0] == 'canonical' or found[1]:
        return
    own = module.state_dict()
    canonical = canonicalize({name: state_dict[key] for name, key in names.items()
                              if isinstance(state_dict[key], torch.Tensor)})
    report = LoadReport(source=f'the keys under {prefix!r}', meta=canonical.meta)
    converted = dict(canonical.encoder)
    _fit(converted, own, module, canonical.meta, trusted_grid=False, has_decoder=False, report=report)
    for key in names.values():
        del state_dict[key]
    for name, value in converted.items():
        state_dict[prefix + name] = value
    kept = []
    if getattr(module, 'final_norm', True) is False:
        for name in ('norm.weight', 'norm.bias'):
            if name in own and name not in converted:
                state_dict[prefix + name] = own[name]
                kept.append(name)
    print_log(f'{type(module).__name__}: renamed {len(converted)} backbone tensors under {prefix!r} from '
              f'{canonical.meta.source_format} to our names'
              + (f'; resized {report.resized_keys}' if report.resized_keys else '')
              + (f'; set aside {len(canonical.dropped)} ({_short(canonical.dropped, 3)})' if canonical.dropped
                 else '') + (f'; kept its own unused {kept}' if kept else ''), logger='current')


def _short(keys: List[str], limit: int = 8) -> str:
    return ', '.join(keys[:limit]) + (f', ... ({len(keys)} in all)' if len(keys) > limit else '')


def _log_report(report: LoadReport, model_name: str, checkpoint: Mapping[str, Any], model: nn.Module) -> None:
    """Say what was loaded, once: problems as warnings, expected gaps as info, no empty sections."""
    args = checkpoint.get('args') if isinstance(checkpoint, Mapping) else None
    trained_as = f', trained as {args.model}' if getattr(args, 'model', None) else ''
    print_log(f'{model_name}: loaded {len(report.loaded_keys)} tensors from {report.source} '
              f'({report.meta.summary()}{trained_as})'
              + (f'; resized {report.resized_keys}' if report.resized_keys else ''), logger='current')
    for reason, keys in report.dropped_keys.items():
        print_log(f'{model_name}: set aside {len(keys)} checkpoint keys ({reason}): {_short(keys)}',
                  logger='current')
    new_by_design = [k for k in report.expected_missing_keys if k.endswith(NEW_BY_DESIGN_SUFFIXES)]
    if new_by_design:
        print_log(f'{model_name}: {len(new_by_design)} keys are new by design and keep their initialisation '
                  f'(rel-pos tables, zero; layer scales, their init value): {_short(new_by_design)}',
                  logger='current')
    unused_norm = [k for k in report.expected_missing_keys  # a backbone with final_norm=False
                   if k.replace('backbone.', '', 1) in ('norm.weight', 'norm.bias')]
    if unused_norm:
        print_log(f'{model_name}: {unused_norm} are not in the file and keep their initialisation; the backbone does '
                  'not use its final norm (final_norm=False)', logger='current')
    decoder = [k for k in report.expected_missing_keys if k not in new_by_design and k not in unused_norm]
    if decoder:
        print_log(f'{model_name}: encoder-only checkpoint: {len(decoder)} decoder keys are not in the file, as '
                  f'expected; the decoder keeps its fresh initialisation: {_short(decoder)}', logger='current')
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


__all__ = ['LoadReport', 'NEW_BY_DESIGN_SUFFIXES', 'apply_init_cfg', 'load_weights']
__all__ += ['load_classifier_weights']
__all__ += ['convert_backbone_keys_hook']
