#!/usr/bin/env python
"""The README's main job: pretrain a tiny MAE on CPU and leave a checkpoint and reconstruction pictures.

    python tools/demo.py                          # built-in procedural images, ~5 minutes on 2 cores
    python tools/demo.py --images ~/my_photos     # your own folder (searched recursively)
    python tools/demo.py --epochs 200             # longer

Writes work_dirs/demo/pretrain/: epoch_*.pth checkpoints and reconstructions/iter_*.png.
"""
import argparse
import sys
import time
from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner

import mae_transfer  # noqa: F401
from mae_transfer.datasets import find_images, generate_images
from mae_transfer.utils import collect_env
from mae_transfer.utils.configs import CONFIG_ROOT

TINY_CONFIG = CONFIG_ROOT / 'pretrain' / 'mae_vit-tiny-p16_1xb32-50e_synthetic.py'
BUILT_IN_IMAGES = Path('data/synthetic_images')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=Path, default=None,
                        help='folder of your own images (default: generate procedural ones)')
    parser.add_argument('--num-images', type=int, default=512, help='how many images to generate')
    parser.add_argument('--epochs', type=int, default=None, help='override the tiny config (50)')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/demo'))
    return parser.parse_args()


def prepare_images(args: argparse.Namespace) -> Path:
    if args.images is not None:
        print(f'[demo] using {len(find_images(args.images))} images under {args.images}')
        return args.images
    existing = sorted(BUILT_IN_IMAGES.glob('scene_*.png')) if BUILT_IN_IMAGES.is_dir() else []
    if len(existing) != args.num_images:
        start = time.time()
        generate_images(BUILT_IN_IMAGES, num_images=args.num_images, seed=0)
        print(f'[demo] generated {args.num_images} procedural images in {BUILT_IN_IMAGES} '
              f'({time.time() - start:.0f} s)')
    return BUILT_IN_IMAGES


def main() -> None:
    args = parse_args()
    failures = collect_env.verify()
    if failures:
        sys.exit('\n'.join(failures))
    image_dir = prepare_images(args)

    cfg = Config.fromfile(str(TINY_CONFIG))
    cfg.work_dir = str(args.work_dir / 'pretrain')
    cfg.train_dataloader.dataset.data_root = str(image_dir)
    if args.epochs:
        cfg.train_cfg.max_epochs = args.epochs
        cfg.param_scheduler[-1].update(T_max=args.epochs - cfg.warmup_epochs, end=args.epochs)
    print(f'[demo] stage 1/1: tiny MAE pretraining ({cfg.train_cfg.max_epochs} epochs) -> {cfg.work_dir}')
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    pictures = sorted(Path(cfg.work_dir, 'reconstructions').glob('iter_*.png'),
                      key=lambda path: int(path.stem.split('_')[1]))
    print(f'\n[demo] done in {(time.time() - start) / 60:.1f} min')
    print(f'[demo] checkpoint: {Path(cfg.work_dir) / "last_checkpoint"} -> '
          f'{Path(cfg.work_dir, "last_checkpoint").read_text().strip()}')
    if pictures:
        print(f'[demo] reconstructions: {pictures[0]} ... {pictures[-1]} (masked | reconstruction | original)')


if __name__ == '__main__':
    main()
