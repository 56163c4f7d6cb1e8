"""`mae-transfer`: one command for the tools, with the same options as `python tools/<tool>.py`.

    mae-transfer demo                                            # the whole journey on built-in data
    mae-transfer pretrain --images ~/photos --epochs 200         # tiny MAE on your own folder
    mae-transfer pretrain pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py --amp
    mae-transfer train det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py --pretrained checkpoints/my_mae.pth
    mae-transfer dist-train det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py 8
    mae-transfer test CONFIG CHECKPOINT
    mae-transfer dist-test CONFIG CHECKPOINT 8
    mae-transfer configs det                                     # the shipped configs, their data
    mae-transfer data synthetic det                              # the set the tiny det config reads
    mae-transfer infer CONFIG CHECKPOINT photo.jpg --out-dir work_dirs/infer
    mae-transfer infer CONFIG CHECKPOINT clip.mp4 --out-dir work_dirs/infer --json-lines
    mae-transfer export CONFIG CHECKPOINT --out model.onnx
    mae-transfer plan pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py --gpus 4 --gpu-memory 24GB
    mae-transfer gpu-check --make-wheels gpu_wheels/   # on the GPU machine: python3 gpu_wheels/gpu_check.py --wheels gpu_wheels
    mae-transfer infer CONFIG CHECKPOINT photo.jpg --backend onnxruntime --onnx model.onnx
    mae-transfer convert official_mae.pth checkpoints/ours.safetensors
    mae-transfer visualize CONFIG CHECKPOINT a.jpg b.jpg --out recon.png
    mae-transfer download mae_pretrain_vit_base
    mae-transfer benchmark pretrain
    mae-transfer benchmark det tiny

`mae-transfer COMMAND --help` prints that command's options and examples. A CONFIG is a file or a shipped
config named by its path relative to configs/ (`det/mask-rcnn_...py`), so the commands work the same from a
source checkout and from an installed wheel. Each command is a module of `mae_transfer.tools` with a
`main(argv)`; the checkout's `tools/*.py` scripts call the same functions.

A fault of yours (a missing file, a misspelt config key or type, an unreadable image) ends the command with one
line, `mae-transfer COMMAND: error: ...`, and exit status 2; a bug prints its traceback (status 1). `--debug` on
any command line, or MAE_TRANSFER_DEBUG=1, prints the traceback of a fault of yours too (docs/errors.md).
"""
import importlib
import sys
from typing import Dict, List, Optional, Tuple

from mae_transfer.utils.user_errors import DEBUG_FLAG, run_command

# command -> (module of mae_transfer.tools, one line for the command list)
COMMANDS: Dict[str, Tuple[str, str]] = {
    'demo': ('demo', 'the whole journey on built-in data (pretrain, transfer, report)'),
    'pretrain': ('train', 'MAE pretraining (tiny recipe on a folder of images by default)'),
    'train': ('train', 'train any config: detection, segmentation, pose, classification, pretraining'),
    'dist-train': ('dist_train', 'train with N processes (torchrun), elastic restarts with --max-restarts'),
    'test': ('test', "evaluate a checkpoint with its config's test set and metrics"),
    'dist-test': ('dist_test', 'evaluate with N processes (torchrun)'),
    'infer': ('infer', 'predict on images, folders and videos; write annotated pictures / videos'),
    'export': ('export', 'export to ONNX and check onnxruntime against PyTorch'),
    'plan': ('plan', 'per-device batch, accumulation, with_cp and lr for your GPUs, from measured memory'),
    'gpu-check': ('gpu_check', 'on a GPU machine: install from a wheel folder, check mmcv ops, run the ViT-B '
                               'configs'),
    'convert': ('convert', 'convert official MAE / timm / HF / mmpretrain weights'),
    'visualize': ('visualize', 'MAE reconstruction pictures for images'),
    'download': ('download', 'download an official checkpoint (resumable) and convert it'),
    'benchmark': ('benchmark', 'speed, memory and learning checks: pretrain, backbone, det, seg, pose, cls'),
    'configs': ('configs', 'list the shipped configs: task, size, the data each expects'),
    'data': ('data', 'write the synthetic sets the tiny configs read (data synthetic TASK)'),
}
TINY_PRETRAIN = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def pretrain_arguments(argv: List[str]) -> List[str]:
    """`pretrain [CONFIG] [--images DIR] [--epochs N] [train options]` -> `train` arguments."""
    args = list(argv)
    config = args.pop(0) if args and args[0].endswith('.py') else TINY_PRETRAIN
    if '--images' not in args:
        if config == TINY_PRETRAIN:  # the built-in default: its procedural images, written on first use
            from mae_transfer.datasets.synthetic import ensure_synthetic
            ensure_synthetic('pretrain')
        return [config, *args]
    at = args.index('--images')
    if at + 1 >= len(args):
        raise SystemExit('--images needs a value')
    folder = args[at + 1]
    del args[at:at + 2]
    # --epochs goes to `train` as is: it stretches the warmup and cosine with the run.
    # A second --cfg-options adds to the first (mmengine's DictAction merges).
    return [config, *args, '--cfg-options', f'train_dataloader.dataset.data_root={folder}']


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f'  {name.ljust(width)}  {summary}' for name, (_, summary) in COMMANDS.items()]
    return 'usage: mae-transfer COMMAND [options]\n\ncommands:\n' + '\n'.join(lines) + '\n\n' + __doc__


def command_module(command: str):
    """The `mae_transfer.tools` module that runs a command (imported on demand: --help stays quick)."""
    return importlib.import_module(f'mae_transfer.tools.{COMMANDS[command][0]}')


def main(argv: Optional[List[str]] = None) -> Optional[int]:
    """The console script (no argv): exits, with status 2 and one line for a fault of the user's. With argv (a
    test, a notebook): runs the command and lets its errors (SystemExit('message'), ...) through."""
    if argv is None:
        command = next((arg for arg in sys.argv[1:] if arg != DEBUG_FLAG), '')
        run_command(dispatch, f'mae-transfer {command}' if command in COMMANDS else 'mae-transfer')
    return dispatch(argv)


def dispatch(argv: List[str]) -> Optional[int]:
    """Run `mae-transfer COMMAND ...` (argv without the program name) in this process."""
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(usage())
        return None
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise SystemExit(f'unknown command {command!r}\n\n{usage()}')
    if command == 'pretrain' and not ({'-h', '--help'} & set(rest)):
        rest = pretrain_arguments(rest)
    sys.argv = [f'mae-transfer {command}', *rest]  # argparse names the program after sys.argv[0]
    return command_module(command).main(rest)


if __name__ == '__main__':
    sys.exit(main())
