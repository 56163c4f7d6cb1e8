"""Reconstruction pictures and the tools around them: visible patches pasted back, norm_pix undone, files written."""
import json
import subprocess
import sys

import torch
from PIL import Image

from mae_transfer.datasets import generate_images
from mae_transfer.datasets.image_folder import load_images
from mae_transfer.models import mae_vit_tiny_patch16
from mae_transfer.models.reconstruction import reconstruct
from mae_transfer.visualization import reconstruction_grid

from helpers.paths import REPO

TINY = REPO / 'configs' / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def test_visible_patches_are_the_original_and_removed_ones_the_prediction(tmp_path):
    paths = generate_images(tmp_path, num_images=2, seed=3)
    images = load_images(paths, 64)
    assert images.shape == (2, 3, 64, 64)
    for norm_pix in (False, True):
        model = mae_vit_tiny_patch16(img_size=64, norm_pix_loss=norm_pix)
        noise = torch.rand(2, model.num_patches, generator=torch.Generator().manual_seed(0))
        result = reconstruct(model, images, mask_ratio=0.75, noise=noise)
        visible = (1 - result['mask']).bool()  # [N, L]
        patches = lambda key: model.patchify(result[key])  # noqa: E731  [N, L, p*p*3]
        assert torch.allclose(patches('reconstruction')[visible], patches('original')[visible], atol=1e-5)
        removed = ~visible
        assert torch.allclose(patches('reconstruction')[removed], patches('prediction')[removed], atol=1e-5)
        assert torch.all(patches('masked')[removed] == 0.5)  # grey
        assert result['mask'].sum(dim=1).tolist() == [12, 12]  # 16 patches, 4 kept


def test_norm_pix_prediction_is_brought_back_with_each_patch_statistics():
    model = mae_vit_tiny_patch16(img_size=32, norm_pix_loss=True)
    images = torch.randn(1, 3, 32, 32)
    target = model.patchify(images)
    normalised = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    model.forward = lambda imgs, mask_ratio, noise: (torch.tensor(0.), normalised, torch.ones(1, 4))
    result = reconstruct(model, images, mean=(0., 0., 0.), std=(1., 1., 1.))
    assert torch.allclose(result['prediction'], images.clamp(0, 1), atol=1e-4)  # a perfect model, undone


def test_grid_has_three_labelled_rows(tmp_path):
    model = mae_vit_tiny_patch16(img_size=32)
    result = reconstruct(model, torch.randn(3, 3, 32, 32))
    grid = reconstruction_grid(result, title='iter 1')
    assert grid.size[0] > 3 * 32 and grid.size[1] > 3 * 32


def test_visualize_tool_reads_our_and_official_checkpoints(tmp_path):
    paths = generate_images(tmp_path / 'images', num_images=2, seed=1)
    model = mae_vit_tiny_patch16(img_size=128, norm_pix_loss=True)
    ours = tmp_path / 'ours.pth'
    torch.save({'state_dict': {f'mae.{k}': v for k, v in model.state_dict().items()}, 'meta': {}}, ours)
    official = tmp_path / 'official.pth'
    torch.save({'model': model.state_dict()}, official)
    for checkpoint in (ours, official):
        out = tmp_path / f'{checkpoint.stem}.png'
        result = subprocess.run([sys.executable, 'tools/visualize_reconstruction.py', str(TINY), str(checkpoint),
                                 *map(str, paths), '--out', str(out)], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert Image.open(out).size[1] > 3 * 128


def test_benchmark_prints_a_measurement():
    result = subprocess.run([sys.executable, 'tools/benchmark.py', 'pretrain', '--single', '--arch', 'tiny',
                             '--img-size', '32', '--batch', '2', '--iters', '1', '--warmup', '0', '--dtypes', 'bf16',
                             '--bound-size', '64', '--bound-repeats', '1'],  # a tiny bound: a test, not a measurement
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    measurement = json.loads(result.stdout.strip().splitlines()[-1])
    assert measurement['img_per_s'] > 0 and measurement['peak_mem_mib'] > 0 and measurement['encoder_fwd_ms'] > 0
