"""Convert a ViT checkpoint (official MAE, ours, timm, mmpretrain, HuggingFace) to our canonical encoder file.

    mae-transfer convert checkpoints/mae_pretrain_vit_base.pth checkpoints/vit_base.safetensors
    mae-transfer convert hf_vit_mae/model.safetensors vit.pth --format huggingface

    mae-transfer convert work_dirs/cls/best.pth vit_b_ft.safetensors --to-timm   # publish a classifier

DST's suffix picks the output: `.pth` / `.pt` hold {'state_dict': ..., 'meta': {...}}, `.safetensors` holds
the tensors with the meta as string metadata. With `--to-timm`, SRC is a trained `ViTClassifier` and DST a
timm `VisionTransformer` state dict (bare in `.pth`, plain `.safetensors`) with the head; the timm constructor
arguments are printed and written beside it as DST + '.json'. Otherwise only encoder weights are written
(canonical names, no decoder, no heads); what was dropped is printed. SRC is read exactly as given (no
safetensors sibling swap), never modified, and DST is written to a temporary file first and renamed when complete.
"""
import argparse
from collections import Counter
from pathlib import Path
from typing import Iterable, List, Optional

from mmengine.logging import MMLogger

import mae_transfer  # noqa: F401  (checkpoint allowlist)
from mae_transfer.checkpoint import (CHECKPOINT_FORMATS, UnknownCheckpointFormatError, UnsafeCheckpointError,
                                     classifier_to_timm, dropped_kind, load_pretrained_encoder, safe_torch_load,
                                     save_encoder_checkpoint, save_timm_classifier)

OUTPUT_SUFFIXES = ('.pth', '.pt', '.safetensors')


def group_keys(keys: Iterable[str], limit: int = 8) -> str:
    """'neck.decoder_blocks.* (16), neck.decoder_embed.* (2), ...': keys counted by their leading names, as
    many leading names as it takes to tell them apart (one shared prefix like 'neck.' says little).

    Args:
        keys: state dict keys.
        limit: groups shown before '...'.
    """
    keys = list(keys)

    def group(key: str, depth: int) -> str:
        parts = key.split('.')
        return '.'.join(parts[:depth]) + ('.*' if len(parts) > depth else '')

    depth = 1
    while depth < 3 and len({group(k, depth) for k in keys}) == 1 and any(k.count('.') >= depth for k in keys):
        depth += 1
    counts = Counter(group(key, depth) for key in keys)
    shown = [f'{name} ({count})' if count > 1 else name for name, count in counts.most_common(limit)]
    return ', '.join(shown) + (', ...' if len(counts) > limit else '')


def describe_dropped(keys: List[str]) -> List[str]:
    """One line per kind of dropped key (decoder, neck, head, other)."""
    lines = []
    for kind in ('decoder', 'neck', 'head', 'other'):
        of_kind = [key for key in keys if dropped_kind(key) == kind]
        if of_kind:
            lines.append(f'  dropped {len(of_kind)} {kind} keys: {group_keys(of_kind)}')
    return lines or ['  dropped nothing']


def write_timm_classifier(src: Path, dst: Path) -> int:
    """`--to-timm`: a ViTClassifier checkpoint -> timm state dict at `dst` and its constructor arguments beside."""
    try:
        state_dict, kwargs = classifier_to_timm(safe_torch_load(str(src), map_location='cpu'))
    except (ValueError, UnsafeCheckpointError, FileNotFoundError) as error:
        raise SystemExit(str(error)) from error  # the file is not what --to-timm reads: one line, status 2
    save_timm_classifier(state_dict, kwargs, dst)
    count = sum(t.numel() for t in state_dict.values())
    print(f'{src}: ViTClassifier, {len(state_dict)} tensors, {count:,} parameters')
    print(f'wrote {dst} (timm VisionTransformer state dict) and {dst}.json; load it with')
    print(f'  timm.models.vision_transformer.VisionTransformer(**{kwargs}).load_state_dict(...)')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint to read (.pth, .pt, .bin, .ckpt, .safetensors)')
    parser.add_argument('dst', help='file to write (.pth, .pt or .safetensors)')
    parser.add_argument('--format', default='auto', choices=('auto',) + CHECKPOINT_FORMATS,
                        help='source format; auto detects it from the key names')
    parser.add_argument('--to-timm', action='store_true',
                        help='SRC is a trained ViTClassifier: write a timm VisionTransformer state dict with its head')
    args = parser.parse_args(argv)
    # the command prints its own summary; the library's INFO log lines would repeat it (warnings still show)
    MMLogger.get_instance('mae_transfer_convert', log_level='WARNING')

    src, dst = Path(args.src), Path(args.dst)
    if dst.suffix not in OUTPUT_SUFFIXES:
        raise SystemExit(f'{dst} must end in one of {", ".join(OUTPUT_SUFFIXES)}')
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise SystemExit(f'{dst} is the source file; write the converted checkpoint elsewhere')
    if args.to_timm:
        return write_timm_classifier(src, dst)
    try:
        state_dict, meta = load_pretrained_encoder(src, format=args.format, prefer_safetensors=False)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from error  # `run_command` prints it as one line with the command's name

    print(f'{src}: {meta.summary()}')
    print(f'  {len(state_dict)} encoder tensors, {sum(t.numel() for t in state_dict.values()):,} parameters, '
          f'mlp_ratio {meta.mlp_ratio:g}, qkv_bias {meta.qkv_bias}, encoder prefix {meta.source_prefix!r}')
    for line in describe_dropped(meta.dropped_keys):
        print(line)
    if meta.extra_keys:
        print(f'  kept {len(meta.extra_keys)} encoder keys beyond the plain ViT: {group_keys(meta.extra_keys)}')
    save_encoder_checkpoint(state_dict, meta, dst)
    print(f'wrote {dst}')
    return 0


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer convert')
