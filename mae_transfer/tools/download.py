"""Download an official MAE checkpoint by name into checkpoints/ and convert it to our encoder format.

    mae-transfer download mae_pretrain_vit_base
    mae-transfer download mae_visualize_vit_large --dest checkpoints/
    mae-transfer download --list

The file is written as `<dest>/<name>.pth` (as published) plus `<dest>/<name>.safetensors` (canonical encoder,
read first by `load_pretrained_encoder`). A broken download is resumed from `<name>.pth.part` by running
the same command again. `--url-override` fetches from a mirror; `--sha256` verifies against a digest you trust
(none is recorded for the official files).
"""
import argparse
import difflib
import sys
from typing import List, Optional

from mmengine.logging import MMLogger

import mae_transfer  # noqa: F401  (checkpoint allowlist)
from mae_transfer.checkpoint import MODEL_ZOO, ChecksumMismatch, DownloadInterrupted, fetch_checkpoint


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('name', nargs='?', help=f'one of: {", ".join(MODEL_ZOO)}')
    parser.add_argument('--dest', default='checkpoints/', help='folder for the files')
    parser.add_argument('--url-override', help='download from this URL instead of the published one')
    parser.add_argument('--sha256', help='expected SHA-256 of the downloaded file')
    parser.add_argument('--no-convert', action='store_true', help='only download')
    parser.add_argument('--retries', type=int, default=3, help='automatic resumes of a broken transfer')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--list', action='store_true', help='list the known checkpoints and exit')
    args = parser.parse_args(argv)
    # the command prints its own summary; the library's INFO log lines would repeat it (warnings still show)
    MMLogger.get_instance('mae_transfer_download', log_level='WARNING')

    if args.list or not args.name:
        for entry in MODEL_ZOO.values():
            print(f'{entry.name:34s} ViT-{entry.arch[0].upper()}/{entry.patch_size}  {entry.url}\n'
                  f'{"":34s} {entry.purpose}')
        return 0 if args.list else 2
    if args.name not in MODEL_ZOO:
        close = difflib.get_close_matches(args.name, MODEL_ZOO, n=1)
        hint = f'did you mean {close[0]}? ' if close else ''
        raise SystemExit(f'unknown checkpoint {args.name!r}; {hint}known: {", ".join(MODEL_ZOO)}')  # status 2
    try:
        raw, converted, meta = fetch_checkpoint(args.name, args.dest, url_override=args.url_override,
                                                sha256=args.sha256, convert=not args.no_convert,
                                                progress=not args.no_progress, retries=args.retries)
    except (DownloadInterrupted, ChecksumMismatch, OSError) as error:  # the network's or the file's fault: 1
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(f'downloaded {raw}')
    if meta is not None:
        print(f'converted  {converted}: {meta.summary()}')
        expected = MODEL_ZOO[args.name]
        if meta.arch != expected.arch or meta.patch_size != expected.patch_size:
            print(f'warning: {args.name} should be ViT-{expected.arch}/{expected.patch_size}, the file holds '
                  f'{meta.arch or "a custom ViT"}/{meta.patch_size}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer download')
