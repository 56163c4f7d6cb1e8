"""Draw MAE reconstructions of your images with any checkpoint: masked | reconstruction + visible | original.

    mae-transfer visualize CONFIG CHECKPOINT img1.jpg img2.jpg --out recon.png
    mae-transfer visualize pretrain/mae_vit-large-p16_8xb512-amp-coslr-800e_in1k-224x224.py \
        checkpoints/mae_visualize_vit_large.pth demo.jpg --mask-ratio 0.75 --seed 2

CHECKPOINT may be one of this project's (mmengine, keys prefixed `mae.`) or an official MAE file with its
decoder (`{'model': ...}`, e.g. mae_visualize_vit_large.pth); an encoder-only file draws an untrained decoder.
"""
import argparse
from pathlib import Path
from typing import List, Optional

import torch

import mae_transfer  # noqa: F401
from mae_transfer.checkpoint import load_weights
from mae_transfer.datasets.image_folder import load_images
from mae_transfer.utils.images import UnreadableImageError
from mae_transfer.models.reconstruction import reconstruct
from mae_transfer.tools import load_config_or_exit
from mae_transfer.utils.configs import build_model
from mae_transfer.visualization import reconstruction_grid


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='pretraining config (architecture, image size, normalisation): a file or a '
                        'shipped config relative to configs/')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+')
    parser.add_argument('--out', default='reconstruction.png')
    parser.add_argument('--mask-ratio', type=float, default=0.75)
    parser.add_argument('--seed', type=int, default=0, help='seed of the random mask')
    args = parser.parse_args(argv)

    pretrainer = build_model(load_config_or_exit(args.config)).eval()
    result = load_weights(pretrainer.mae, args.checkpoint)  # ours (`mae.` prefix) or official
    if result.encoder_only:
        print('warning: the checkpoint has no decoder; the reconstruction row shows an untrained decoder')

    try:
        images = load_images(args.images, pretrainer.mae.patch_embed.img_size, pretrainer.pixel_mean,
                             pretrainer.pixel_std)
    except UnreadableImageError as error:  # a file named on the command line: one line naming it, no traceback
        raise SystemExit(str(error)) from error
    noise = torch.rand(len(images), pretrainer.mae.num_patches, generator=torch.Generator().manual_seed(args.seed))
    output = reconstruct(pretrainer.mae, images, args.mask_ratio, noise, pretrainer.pixel_mean, pretrainer.pixel_std)
    title = f'{Path(args.checkpoint).name}, mask {args.mask_ratio:.2f}, loss {float(output["loss"]):.4f}'
    reconstruction_grid(output, title).save(args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer visualize')
