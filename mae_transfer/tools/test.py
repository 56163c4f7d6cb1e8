"""Evaluate a trained checkpoint with the config's test dataloader and evaluator, and save the metrics.

    mae-transfer test det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py work_dirs/det/iter_184375.pth
    mae-transfer test CONFIG CHECKPOINT --cfg-options test_dataloader.dataset.data_root=data/my_coco/
    mae-transfer dist-test CONFIG CHECKPOINT 8
    mae-transfer test seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py work_dirs/seg/iter_200.pth
    mae-transfer test cls/ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py checkpoints/mae_finetuned_vit_base.pth
    mae-transfer test CONFIG CHECKPOINT --backend onnxruntime --onnx model.onnx   # the exported graph's metrics

CONFIG is a file, or a shipped config named by its path relative to configs/. The checkpoint loads whole, heads
included, through `mae_transfer.checkpoint.load_weights`: ours, or a reference project's release (mmdet's ViTDet,
mmseg's MAE / BEiT UperNet, ViTPose, official fine-tuned MAE and timm classifiers; docs/<task>.md). A checkpoint
that leaves any part of the model at its initialisation (an MAE pretraining file, another task's model) stops the
command with one line naming the parts; `--allow-partial` evaluates anyway.
With `--backend onnxruntime`, the graph of `mae-transfer export` runs in onnxruntime in place of the PyTorch network;
the data pipeline, the decoding and the metrics are the same code (docs/export.md).

Prints the task's metrics (COCO bbox/segm AP, mIoU/mAcc/aAcc, keypoint AP, top-1/top-5) and writes them to
`<work_dir>/test_metrics.json` (or `--out`).
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

import mae_transfer  # noqa: F401  (registries and the checkpoint allowlist)
from mae_transfer.checkpoint import evaluation_load
from mae_transfer.engine import prepare_cpu_distributed, unwrap_model
from mae_transfer.tools import load_config_or_exit, use_own_instances
from mae_transfer.utils.config_checks import check_config_values, check_writable_dir
from mae_transfer.utils.configs import CFG_OPTIONS_RULE, merge_cfg_options
from mae_transfer.utils.report import numeric_metrics


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file, or a shipped config relative to configs/')
    parser.add_argument('checkpoint', help='the whole trained model: written by tools/train.py, or a reference '
                                           "project's release")
    parser.add_argument('--work-dir', help='where logs and metrics go (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='metrics JSON file (default: <work_dir>/test_metrics.json)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help=f'override config entries, e.g. test_dataloader.dataset.data_root=DIR; {CFG_OPTIONS_RULE}')
    parser.add_argument('--amp', action='store_true',
                        help="evaluate under autocast: fp16 on a GPU, bf16 on a CPU (mmcv's fp32-only CPU ops get "
                             'fp32)')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                        help='onnxruntime: evaluate the graph of --onnx in place of the PyTorch network')
    parser.add_argument('--onnx', help='the .onnx file of `mae-transfer export` (with --backend onnxruntime)')
    parser.add_argument('--allow-partial', action='store_true',
                        help='evaluate even when the checkpoint leaves parts of the model (neck, heads) at their '
                             'initial values')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if (args.backend == 'onnxruntime') != (args.onnx is not None):
        parser.error('--backend onnxruntime and --onnx FILE go together')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    for path in filter(None, [args.checkpoint, args.onnx]):
        if not osp.isfile(path):
            raise SystemExit(f'file not found: {path}')
    cfg = load_config_or_exit(args.config)
    use_own_instances(cfg, 'test')
    merge_cfg_options(cfg, args.cfg_options)
    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        raise SystemExit(f'{args.config} defines no test_dataloader / test_evaluator: nothing to evaluate')
    if args.amp:  # mmengine's TestLoop runs under its autocast (bf16 on a CPU)
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
        from mae_transfer.engine.autocast_boundaries import cast_mmcv_ops_to_fp32
        cast_mmcv_ops_to_fp32()
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_config_values(cfg, args.config)
    check_writable_dir(cfg.work_dir, 'work dir')
    # The trained weights replace the whole model's; the backbone's pretrained init is for training only.
    cfg.load_from, cfg.resume = args.checkpoint, False
    prepare_cpu_distributed(cfg, args.launcher)

    runner = Runner.from_cfg(cfg)
    model = unwrap_model(runner.model)
    if args.amp:
        from mae_transfer.engine.autocast_boundaries import fp32_predictions
        fp32_predictions(model)  # evaluators read predictions with numpy, which has no bf16
    runtime = None
    if args.backend == 'onnxruntime':
        from mae_transfer.export import attach_onnxruntime
        model.cfg = cfg  # what the task graph reads (task, input size)
        runtime = attach_onnxruntime(model, args.onnx, checkpoint=args.checkpoint)
    with evaluation_load(allow_partial=args.allow_partial):  # runner.test() loads `load_from`: whole, or it stops
        metrics = runner.test()
    if runtime is not None:
        print_log(f'onnxruntime ran {osp.basename(args.onnx)} {runtime.calls} times', logger='current')
    if runner.rank == 0:
        out = args.out or osp.join(cfg.work_dir, 'test_metrics.json')
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(numeric_metrics(metrics), f, indent=2)
        print_log(f'metrics written to {out}', logger='current')


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer test')
