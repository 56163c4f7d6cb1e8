"""Train from a config with the mmengine Runner: MAE pretraining, detection, segmentation, pose, classification.

    mae-transfer train pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py
    mae-transfer train CONFIG --work-dir work_dirs/run1 --amp --cfg-options train_cfg.max_iters=100
    mae-transfer train CONFIG --resume                      # from work_dir's last checkpoint
    mae-transfer train CONFIG --epochs 200                  # 200 epochs, warmup and lr schedule stretched too
    mae-transfer train CONFIG --pretrained work_dirs/mae/epoch_800.pth   # or --pretrained none (random)
    mae-transfer dist-train CONFIG 8                           # distributed (torchrun)
    mae-transfer train det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py   # a shipped config by name

CONFIG is a file, or a shipped config named by its path relative to configs/ (as in the last line).
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mae_transfer  # noqa: F401  (registries and the checkpoint allowlist)
from mae_transfer.engine import (add_run_safety, effective_batch_size, prepare_cpu_distributed,
                                 STRATEGY_CHOICES, scale_lr_to_effective_batch,
                                 use_sharded_strategy)
from mae_transfer.engine.elastic import resume_after_elastic_restart
from mae_transfer.engine.resume_seed import keep_the_resumed_seed
from mae_transfer.engine.batch_fit import fit_batch_to_image_folder
from mae_transfer.tools import load_config_or_exit, use_own_instances
from mae_transfer.utils.config_checks import check_config_values, check_writable_dir
from mae_transfer.utils.configs import CFG_OPTIONS_RULE, merge_cfg_options, set_pretrained
from mae_transfer.utils.registry_hints import missing_type_hint
from mae_transfer.utils.schedule import set_schedule_length


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file, or a shipped config relative to configs/')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from CHECKPOINT, or from the last checkpoint of the work dir if none given')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: bf16 autocast on CPU, fp16 with loss scaling on GPU '
                             '(or --amp-dtype)')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'], default=None)
    parser.add_argument('--pretrained', metavar='CHECKPOINT',
                        help="backbone weights to start from (any supported format), or 'none' for random "
                             'initialisation; overrides the config\'s model.backbone.init_cfg')
    length = parser.add_mutually_exclusive_group()
    length.add_argument('--epochs', type=int, help='train an epoch-based config this many epochs, scaling its whole '
                        'schedule (warmup, lr steps, cosine, intervals) with it')
    length.add_argument('--iters', type=int, help='the same for an iteration-based config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help=f'override config entries, e.g. train_cfg.max_iters=100; {CFG_OPTIONS_RULE}')
    parser.add_argument('--compile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                        help="torch.compile the network (the MAE, else the backbone); BACKEND 'inductor' (default) "
                             "or 'eager' (trace only). The first iteration's time, compilation included, is logged")
    parser.add_argument('--strategy', choices=STRATEGY_CHOICES, default='ddp',
                        help='fsdp / deepspeed: shard parameters, gradients and optimizer state over the processes '
                             "(mmengine's FlexibleRunner) for models one card cannot hold; docs/planning.md")
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg: Config, dtype: str = None) -> None:
    """Swap the optimizer wrapper for a mixed-precision one suited to the device we will train on."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in ('OptimWrapper', 'mmengine.OptimWrapper'):
        print_log(f'--amp: the config already uses {wrapper}; leaving it', logger='current')
        return
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = dtype or 'float16'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        if dtype == 'float16':
            raise SystemExit('--amp-dtype float16 needs a GPU (loss scaling); use bfloat16 on CPU')
        cfg.optim_wrapper.type = 'mae_transfer.AutocastOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'


def amp_on_cpu(cfg: Config) -> None:
    """A recipe written for GPUs asks for AmpOptimWrapper (fp16 + loss scaling), which needs CUDA: on a machine
    without a GPU, run the same mixed-precision recipe with bf16 autocast instead of failing."""
    if torch.cuda.is_available() or 'optim_wrapper' not in cfg:
        return
    if str(cfg.optim_wrapper.get('type', '')).split('.')[-1] == 'AmpOptimWrapper':
        print_log('no GPU: AmpOptimWrapper (fp16) -> mae_transfer.AutocastOptimWrapper (bf16 autocast on CPU)',
                  logger='current')
        cfg.optim_wrapper.type = 'mae_transfer.AutocastOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
        cfg.optim_wrapper.pop('loss_scale', None)


def world_size_from_env(launcher: str) -> int:
    if launcher == 'none':
        return 1
    return int(os.environ.get('WORLD_SIZE') or os.environ.get('SLURM_NTASKS') or 1)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config_or_exit(args.config)
    use_own_instances(cfg, 'train')
    merge_cfg_options(cfg, args.cfg_options)
    if args.epochs is not None or args.iters is not None:
        try:
            set_schedule_length(cfg, epochs=args.epochs, iters=args.iters)
        except ValueError as error:
            raise SystemExit(f'{args.config}: {error}') from error
    if args.pretrained is not None:
        set_pretrained(cfg, args.pretrained)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_config_values(cfg, args.config)  # batch sizes, lr, lengths: one line before anything is built
    check_writable_dir(cfg.work_dir, 'work dir')
    if args.amp or args.amp_dtype:
        enable_amp(cfg, args.amp_dtype)
    amp_on_cpu(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    resume_after_elastic_restart(cfg)  # torchrun restarted the workers: continue from this job's last checkpoint
    keep_the_resumed_seed(cfg)  # a config without a seed resumes with the checkpoint's (same data order)

    prepare_cpu_distributed(cfg, args.launcher)  # gloo + a CPU-friendly DDP when there is no GPU
    use_sharded_strategy(cfg, args.strategy, args.launcher)
    world_size = world_size_from_env(args.launcher)
    fit_batch_to_image_folder(cfg, world_size)  # a folder smaller than the batch trains with a smaller batch
    factor = scale_lr_to_effective_batch(cfg, world_size)
    if factor != 1.0:
        print_log(f'lr scaled by {factor:g} to the effective batch {effective_batch_size(cfg, world_size)} '
                  f'(world size x batch x accumulation): lr = {cfg.optim_wrapper.optimizer.lr:.3e}',
                  logger='current')

    if args.compile:
        cfg.custom_hooks = [*(cfg.get('custom_hooks') or []),
                            dict(type='mae_transfer.CompileHook', backend=args.compile)]
    add_run_safety(cfg)  # exact resume (RNG states), stop on NaN/inf loss, fresh augmentations per epoch
    try:
        # A config may name its own runner class; mmengine's RUNNERS builds it from the whole config.
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
        runner.train()
    except KeyError as error:
        hint = missing_type_hint(error)
        if hint is None:
            raise
        raise SystemExit(f'{args.config}: {hint}') from error


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer train')
