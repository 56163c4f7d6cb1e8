"""MAE pretraining on the mmengine Runner: the tiny config trains, saves pictures, resumes, scales lr, runs DDP."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options
from mae_transfer.engine import AutocastOptimWrapper, effective_batch_size, scale_lr_to_effective_batch
from mae_transfer.utils.configs import CONFIG_ROOT, build_model

from helpers.paths import REPO

TINY = CONFIG_ROOT / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
BASE = CONFIG_ROOT / 'pretrain' / 'mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py'


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
    return ensure_synthetic('pretrain', tmp_path_factory.mktemp('images'), num_images=16, seed=0,
                            size_range=(80, 140))


def tiny_cfg(image_dir, work_dir, max_epochs=2, batch_size=4):
    cfg = Config.fromfile(str(TINY))
    cfg.merge_from_dict({
        'work_dir': str(work_dir), 'model.img_size': 64, 'train_cfg.max_epochs': max_epochs,
        'train_dataloader.batch_size': batch_size, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False, **synthetic_data_options('pretrain', image_dir),
        'train_dataloader.dataset.crop_size': 64, 'auto_scale_lr.base_batch_size': batch_size,
        'default_hooks.checkpoint.interval': 1, 'default_hooks.logger.interval': 1,
        'custom_hooks': [dict(type='ReconstructionHook', interval=3, num_images=2)],
    })
    return cfg


def test_tiny_config_trains_writes_pictures_and_resumes(image_dir, tmp_path):
    runner = Runner.from_cfg(tiny_cfg(image_dir, tmp_path, max_epochs=1))
    runner.train()
    assert runner.iter == 4  # 16 images / batch 4
    assert (tmp_path / 'epoch_1.pth').exists()
    pictures = sorted((tmp_path / 'reconstructions').glob('iter_*.png'))
    assert [p.name for p in pictures] == ['iter_3.png', 'iter_4.png']

    cfg = tiny_cfg(image_dir, tmp_path, max_epochs=2)
    cfg.resume = True  # from work_dir's last_checkpoint
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 8 and resumed.epoch == 2, 'resume must continue from epoch 1, iteration 4'


def test_tiny_model_loss_falls_on_a_fixed_batch(image_dir):
    cfg = Config.fromfile(str(TINY))
    cfg.model.img_size = 64
    torch.manual_seed(0)
    model = build_model(cfg)
    with DefaultScope.overwrite_default_scope('mae_transfer'):
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    from mae_transfer.datasets import UnlabeledImageFolder
    dataset = UnlabeledImageFolder(image_dir, crop_size=64)
    batch = model.data_preprocessor(dict(inputs=torch.stack([dataset[i]['inputs'] for i in range(8)])), True)
    noise = torch.rand(8, model.mae.num_patches)  # the same mask every step: a fixed problem to fit
    losses = []
    for _ in range(40):
        loss = model.mae(batch['inputs'], mask_ratio=0.75, noise=noise)[0]
        optim.update_params(loss)
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_recipe_weight_decay_spares_norms_and_biases_but_decays_tokens():
    """As official main_pretrain.py (timm 0.3.2 add_weight_decay, no skip list): wd 0 only on 1-D params and
    biases; cls_token and mask_token ([1, 1, D]) are decayed; the fixed sin-cos tables are not optimised."""
    cfg = Config.fromfile(str(TINY))
    model = build_model(cfg)
    with DefaultScope.overwrite_default_scope('mae_transfer'):
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay_of = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optim.optimizer.param_groups:
        for param in group['params']:
            decay_of[names[id(param)]] = group['weight_decay']
    assert decay_of['mae.blocks.0.attn.qkv.weight'] == 0.05
    assert decay_of['mae.decoder_pred.weight'] == 0.05
    assert decay_of['mae.cls_token'] == decay_of['mae.mask_token'] == 0.05
    assert decay_of['mae.patch_embed.proj.weight'] == decay_of['mae.decoder_embed.weight'] == 0.05
    for no_decay in ('mae.blocks.0.attn.qkv.bias', 'mae.blocks.0.norm1.weight', 'mae.norm.bias',
                     'mae.decoder_norm.weight', 'mae.decoder_blocks.0.mlp.fc2.bias', 'mae.patch_embed.proj.bias'):
        assert decay_of[no_decay] == 0.0, no_decay
    # the same split as the official rule, parameter by parameter
    official = {name: 0.0 if param.ndim == 1 or name.endswith('.bias') else 0.05
                for name, param in model.named_parameters() if param.requires_grad}
    assert {name: decay_of[name] for name in official} == official
    assert 'mae.pos_embed' not in decay_of, 'the sin-cos position embedding is fixed, not trained'
    assert 'mae.decoder_pos_embed' not in decay_of


def test_lr_follows_the_effective_batch_including_accumulation():
    cfg = Config.fromfile(str(BASE))
    paper_lr = cfg.optim_wrapper.optimizer.lr
    assert paper_lr == pytest.approx(1.5e-4 * 4096 / 256)
    cfg.train_dataloader.batch_size = 64
    cfg.optim_wrapper.accumulative_counts = 4
    assert effective_batch_size(cfg, world_size=8) == 2048
    assert scale_lr_to_effective_batch(cfg, world_size=8) == pytest.approx(0.5)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.5e-4 * 2048 / 256)
    assert cfg.auto_scale_lr.enable is False  # mmengine must not scale a second time


def test_bf16_autocast_wrapper_trains_on_cpu():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    before = model[0].weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(4, 8))
        assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    assert not torch.equal(before, model[0].weight)
    with pytest.raises(ValueError, match='loss scaling'):
        AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='float16')


def _train_command_options(image_dir, batch_size):
    return ['--cfg-options', 'model.img_size=64', 'train_cfg.max_epochs=1',
            f'train_dataloader.batch_size={batch_size}', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            f'train_dataloader.dataset.data_root={image_dir}', 'train_dataloader.dataset.crop_size=64',
            'custom_hooks.0.interval=2']


def test_train_tool_with_amp_leaves_checkpoint_and_picture(image_dir, tmp_path):
    command = [sys.executable, 'tools/train.py', str(TINY), '--work-dir', str(tmp_path), '--amp',
               *_train_command_options(image_dir, batch_size=8)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / 'epoch_1.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert (tmp_path / 'reconstructions' / 'iter_2.png').exists()
    assert "type='mae_transfer.AutocastOptimWrapper'" in (tmp_path / TINY.name).read_text()  # the dumped config


def _dist_train(strategy: str, image_dir, work_dir, port: str) -> dict:
    """2 gloo processes, 2 steps of 4 images each at a constant lr of 0.01 (steps large enough to compare)."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=port, OMP_NUM_THREADS='1')
    command = ['bash', 'tools/dist_train.sh', str(TINY), '2', '--strategy', strategy, '--work-dir', str(work_dir),
               *_train_command_options(image_dir, batch_size=4), 'param_scheduler=[]',
               'optim_wrapper.optimizer.lr=0.01']
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)


def test_distributed_training_with_two_gloo_processes_ddp_and_fsdp(image_dir, tmp_path):
    ddp = _dist_train('ddp', image_dir, tmp_path / 'ddp', '29613')
    assert ddp['meta']['iter'] == 2  # 16 images / (2 processes x batch 4)
    # FSDP shards parameters, gradients and AdamW state over the two processes: the same two steps
    fsdp = _dist_train('fsdp', image_dir, tmp_path / 'fsdp', '29614')
    assert fsdp['state_dict'].keys() == ddp['state_dict'].keys()  # a full state dict, unsharded names
    moved = max(float((ddp['state_dict'][k] - fsdp['state_dict'][k]).abs().max()) for k in ddp['state_dict'])
    assert moved <= 1e-6, moved
    assert (tmp_path / 'fsdp' / 'reconstructions' / 'iter_2.png').is_file()  # hooks see the whole model
    # the FSDP checkpoint initialises a downstream backbone like any other
    cfg = Config.fromfile(str(CONFIG_ROOT / 'cls' / 'ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py'))
    cfg.model.backbone.img_size = 64
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'fsdp' / 'epoch_1.pth'))
    classifier = build_model(cfg)
    classifier.init_weights()
    assert torch.equal(classifier.backbone.blocks[1].attn.qkv.weight,
                       fsdp['state_dict']['mae.blocks.1.attn.qkv.weight'])


def test_sharded_strategies_need_processes_and_their_package():
    from mae_transfer.engine import use_sharded_strategy
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    with pytest.raises(SystemExit, match='launch with `mae-transfer dist-train CONFIG NUM_GPUS --strategy fsdp`'):
        use_sharded_strategy(cfg, 'fsdp', 'none')
    use_sharded_strategy(cfg, 'fsdp', 'pytorch')
    assert cfg.runner_type == 'FlexibleRunner' and cfg.strategy.model_wrapper.use_orig_params
    if importlib.util.find_spec('deepspeed') is None:  # not part of our stack: the message says how to get it
        with pytest.raises(SystemExit, match='pip install deepspeed'):
            use_sharded_strategy(cfg, 'deepspeed', 'pytorch')
