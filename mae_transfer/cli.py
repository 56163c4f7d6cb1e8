"""`mae-transfer`: one command for the tools, with the same options as `python tools/<tool>.py`.

    mae-transfer demo                                            # the whole journey on built-in data
    mae-transfer pretrain --images ~/photos --epochs 200         # tiny MAE on your own folder
    mae-transfer pretrain configs/pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py --amp
    mae-transfer train configs/det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py --pretrained checkpoints/my_mae.pth
    mae-transfer test CONFIG CHECKPOINT
    mae-transfer infer CONFIG CHECKPOINT photo.jpg --out-dir work_dirs/infer
    mae-transfer convert official_mae.pth checkpoints/ours.safetensors
    mae-transfer visualize CONFIG CHECKPOINT a.jpg b.jpg --out recon.png
    mae-transfer download mae_pretrain_vit_base
    mae-transfer benchmark pretrain

`mae-transfer COMMAND --help` prints that tool's options and examples. The tools live in the source
checkout's `tools/` folder (install with `pip install -e .`, as the README does).
"""
import runpy
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

TOOLS_DIR = Path(__file__).resolve().parents[1] / 'tools'

# command -> (script in tools/, one line for the command list)
COMMANDS: Dict[str, Tuple[str, str]] = {
    'demo': ('demo.py', 'the whole journey on built-in data (pretrain, transfer, report)'),
    'pretrain': ('train.py', 'MAE pretraining (tiny recipe on a folder of images by default)'),
    'train': ('train.py', 'train any config: detection, segmentation, pose, classification, pretraining'),
    'test': ('test.py', "evaluate a checkpoint with its config's test set and metrics"),
    'infer': ('infer.py', 'predict on images and write pictures of the predictions'),
    'convert': ('convert_checkpoint.py', 'convert official MAE / timm / HF / mmpretrain weights'),
    'visualize': ('visualize_reconstruction.py', 'MAE reconstruction pictures for images'),
    'download': ('download_checkpoint.py', 'download an official checkpoint (resumable) and convert it'),
    'benchmark': ('benchmark.py', 'speed and memory measurements'),
}
TINY_PRETRAIN = 'configs/pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def pretrain_arguments(argv: List[str]) -> List[str]:
    """`pretrain [CONFIG] [--images DIR] [--epochs N] [train options]` -> tools/train.py arguments."""
    args = list(argv)
    config = args.pop(0) if args and args[0].endswith('.py') else str(TOOLS_DIR.parent / TINY_PRETRAIN)
    if '--images' not in args:
        return [config, *args]
    at = args.index('--images')
    if at + 1 >= len(args):
        raise SystemExit('--images needs a value')
    folder = args[at + 1]
    del args[at:at + 2]
    # --epochs goes to tools/train.py as is: it stretches the warmup and cosine with the run.
    # A second --cfg-options adds to the first (mmengine's DictAction merges).
    return [config, *args, '--cfg-options', f'train_dataloader.dataset.data_root={folder}']


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f'  {name.ljust(width)}  {summary}' for name, (_, summary) in COMMANDS.items()]
    return 'usage: mae-transfer COMMAND [options]\n\ncommands:\n' + '\n'.join(lines) + '\n\n' + __doc__


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(usage())
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise SystemExit(f'unknown command {command!r}\n\n{usage()}')
    script = TOOLS_DIR / COMMANDS[command][0]
    if not script.is_file():
        raise SystemExit(f'{script} not found: mae-transfer runs the tools of a source checkout '
                         '(git clone ... && pip install -e .)')
    if command == 'pretrain' and not ({'-h', '--help'} & set(rest)):
        rest = pretrain_arguments(rest)
    sys.argv = [f'mae-transfer {command}', *rest]
    sys.path.insert(0, str(TOOLS_DIR))
    runpy.run_path(str(script), run_name='__main__')


if __name__ == '__main__':
    main()
