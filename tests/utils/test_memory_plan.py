"""The memory planner: the line fit on a known memory curve, the plan's arithmetic (effective batch and lr kept,
with_cp only when needed, no plan when nothing fits), the CLI with its derived config, and one real measurement."""
import pytest
from mmengine.config import Config

from mae_transfer.tools import plan as plan_tool
from mae_transfer.utils.configs import load_config
from mae_transfer.utils.memory_plan import MIB_PER_GIB, MemoryFit, Recipe, make_plan, parse_memory

GIB = MIB_PER_GIB
VIT_B_PRETRAIN = 'pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py'
TINY_PRETRAIN = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def test_memory_is_read_in_the_units_people_write():
    assert parse_memory('24GB') == parse_memory('24G') == parse_memory('24GiB') == 24 * GIB
    assert parse_memory('16000MB') == 16000 and parse_memory('80') == 80 * GIB
    with pytest.raises(ValueError, match='write e.g. 24GB'):
        parse_memory('lots')


def test_fit_recovers_a_known_line_and_its_largest_batch():
    curve = {batch: 3000 + 250 * batch for batch in (1, 2)}
    fit = MemoryFit.fit(curve)
    assert fit.fixed_mib == pytest.approx(3000) and fit.per_sample_mib == pytest.approx(250)
    assert fit.predict(8) == pytest.approx(5000)
    assert fit.max_batch(5000) == 8 and fit.max_batch(5249) == 8 and fit.max_batch(2000) == 0
    noisy = MemoryFit.fit({2: 3510, 4: 3990, 8: 5010})  # least squares over three points
    assert noisy.per_sample_mib == pytest.approx(250, rel=0.02)
    with pytest.raises(ValueError, match='two batch sizes'):
        MemoryFit.fit({4: 1000})


def test_recipe_of_the_vit_b_pretraining_config():
    recipe = Recipe.from_config(load_config(VIT_B_PRETRAIN))
    assert (recipe.per_device_batch, recipe.devices, recipe.accumulation) == (512, 8, 1)
    assert recipe.effective_batch == recipe.base_batch == 4096 and recipe.lr_follows_batch


def test_plan_keeps_the_effective_batch_and_the_lr():
    recipe = Recipe(per_device_batch=512, devices=8, accumulation=1, lr=1.5e-4 * 16, base_batch=4096,
                    lr_follows_batch=True)
    fits = {False: MemoryFit(4 * GIB, 0.5 * GIB), True: MemoryFit(4 * GIB, 0.2 * GIB)}
    plan = make_plan(recipe, fits, devices=4, capacity_mib=24 * GIB, margin=0.1)
    # usable 21.6 GiB -> at most 35 per device without with_cp; 1024 per device = 32 x 32 (fewest steps dividing)
    assert plan.fits and not plan.with_cp
    assert (plan.per_device_batch, plan.accumulation, plan.effective_batch) == (32, 32, 4096)
    assert plan.lr == pytest.approx(1.5e-4 * 16) and plan.predicted_mib <= 0.9 * 24 * GIB
    assert plan.cfg_options('model.with_cp') == {'train_dataloader.batch_size': 32,
                                                 'optim_wrapper.accumulative_counts': 32, 'model.with_cp': False}


def test_with_cp_only_when_batch_one_does_not_fit_without_it():
    recipe = Recipe(2, 8, 1, 1e-4, 16, lr_follows_batch=True)
    fits = {False: MemoryFit(10 * GIB, 15 * GIB), True: MemoryFit(10 * GIB, 3 * GIB)}
    plan = make_plan(recipe, fits, devices=2, capacity_mib=20 * GIB, margin=0.1)
    assert plan.fits and plan.with_cp and plan.per_device_batch == 2 and plan.accumulation == 4
    assert any('a third more compute' in note for note in plan.notes)


def test_no_plan_says_what_would_fit():
    recipe = Recipe(2, 8, 1, 1e-4, 16, lr_follows_batch=True)
    too_big = {False: MemoryFit(30 * GIB, 2 * GIB), True: MemoryFit(30 * GIB, 1 * GIB)}
    plan = make_plan(recipe, too_big, devices=4, capacity_mib=24 * GIB)
    assert not plan.fits and plan.cfg_options('model.backbone.with_cp') == {}
    assert any('fsdp' in note for note in plan.notes)
    activations = {False: MemoryFit(2 * GIB, 40 * GIB), True: MemoryFit(2 * GIB, 30 * GIB)}
    assert any('smaller input' in note for note in make_plan(recipe, activations, 4, 24 * GIB).notes)


def test_an_effective_batch_that_does_not_split_rescales_the_lr():
    recipe = Recipe(per_device_batch=10, devices=3, accumulation=1, lr=0.3, base_batch=30, lr_follows_batch=False)
    plan = make_plan(recipe, {False: MemoryFit(0, GIB), True: MemoryFit(0, GIB)}, devices=4,
                     capacity_mib=100 * GIB)
    assert plan.effective_batch == 32 and plan.lr == pytest.approx(0.3 * 32 / 30)
    assert plan.cfg_options('model.backbone.with_cp')['optim_wrapper.optimizer.lr'] == pytest.approx(0.32)


def test_cli_prints_the_plan_and_writes_a_derived_config(monkeypatch, tmp_path, capsys):
    def known_curve(config, batch, with_cp, device, options):  # ViT-B-like: 6 GiB + 0.6 GiB per sample
        return (6 + (0.25 if with_cp else 0.6) * batch) * GIB
    monkeypatch.setattr(plan_tool, 'measure_in_fresh_process', known_curve)
    target = tmp_path / 'planned.py'
    plan_tool.main([VIT_B_PRETRAIN, '--gpus', '4', '--gpu-memory', '24GB', '--apply', str(target)])
    out = capsys.readouterr().out
    assert 'per-device batch 16, accumulative_counts 64, with_cp off: effective batch 4096 (kept)' in out
    derived = Config.fromfile(str(target))
    assert derived.train_dataloader.batch_size == 16 and derived.optim_wrapper.accumulative_counts == 64
    assert derived.model.with_cp is False and derived.optim_wrapper.optimizer.lr == pytest.approx(2.4e-3)
    with pytest.raises(SystemExit):  # 6 GiB of fixed memory on a 4 GiB card
        plan_tool.main([VIT_B_PRETRAIN, '--gpus', '4', '--gpu-memory', '4GB'])
    assert 'fsdp' in capsys.readouterr().out


def test_one_real_measurement_counts_the_step_not_the_interpreter():
    result = plan_tool.measure_step(TINY_PRETRAIN, batch=2, with_cp=True, device='cpu', options={})
    assert result['baseline_mib'] > 100  # python, torch and mmengine are not the model's
    assert 0 < result['memory_mib'] < result['peak_mib'] and result['loss'] == result['loss']
