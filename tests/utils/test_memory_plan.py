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


TINY_SEG = 'seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'  # iteration-based, BatchNorm in the heads
TINY_PROBE = 'cls/linear-probe_vit-tiny-p16_1xb64-300i_synthetic-64x64.py'  # BatchNorm1d head
VIT_B_POSE = 'pose/heatmap_vit-base-p16_8xb64-210e_coco-256x192.py'  # epoch-based, 500-iteration warm-up


def _curve(fixed_gib, per_sample_gib):
    def known_curve(config, batch, with_cp, device, options):
        return (fixed_gib + per_sample_gib * batch) * GIB
    return known_curve


def test_apply_keeps_the_updates_of_an_iteration_based_recipe(monkeypatch, tmp_path, capsys):
    # 1 GiB + 1 GiB per sample on 6 GB (5.4 usable): batch 4 fits, the recipe's 8 becomes 4 x 2 accumulation
    monkeypatch.setattr(plan_tool, 'measure_in_fresh_process', _curve(1, 1))
    target = tmp_path / 'seg.py'
    plan_tool.main([TINY_SEG, '--gpus', '1', '--gpu-memory', '6GB', '--apply', str(target)])
    assert "'param_scheduler.1.milestones" not in capsys.readouterr().out  # PolyLR has none
    derived, recipe = Config.fromfile(str(target)), load_config(TINY_SEG)
    assert derived.train_dataloader.batch_size == 4 and derived.optim_wrapper.accumulative_counts == 2
    assert (derived.train_cfg.max_iters, derived.train_cfg.val_interval) == (400, 400)  # 200 updates, as the recipe
    assert [(s.type, s.begin, s.end) for s in derived.param_scheduler] == [('LinearLR', 0, 40), ('PolyLR', 40, 400)]
    assert derived.param_scheduler[0].start_factor == recipe.param_scheduler[0].start_factor  # the rest is kept
    assert derived.default_hooks.checkpoint.interval == 400 and derived.default_hooks.logger.interval == 40
    assert derived.default_hooks.checkpoint.max_keep_ckpts == 1 and derived.model.decode_head.num_classes == 5


def test_apply_keeps_the_epochs_of_an_epoch_based_recipe(monkeypatch, tmp_path):
    # 8 x 64 on 2 GPUs: 128 per device x 2 accumulation; epochs stay, the per-iteration warm-up doubles
    monkeypatch.setattr(plan_tool, 'measure_in_fresh_process', _curve(1, 0.1))
    target = tmp_path / 'pose.py'
    plan_tool.main([VIT_B_POSE, '--gpus', '2', '--gpu-memory', '24GB', '--apply', str(target)])
    derived, recipe = Config.fromfile(str(target)), load_config(VIT_B_POSE)
    assert derived.train_dataloader.batch_size == 128 and derived.optim_wrapper.accumulative_counts == 2
    assert derived.train_cfg == recipe.train_cfg  # max_epochs 210, val_interval 10
    warmup, steps = derived.param_scheduler
    assert (warmup.by_epoch, warmup.end) == (False, 1000)  # 500 updates of warm-up, as the recipe
    assert steps.milestones == [170, 200] and steps.end == 210  # epochs
    assert derived.default_hooks.checkpoint.interval == 10  # epochs
    assert derived.default_hooks.logger.interval == 100  # LoggerHook counts iterations


def test_rescale_iterations_of_a_pure_epoch_recipe_and_of_no_accumulation():
    from mae_transfer.utils.memory_plan import rescale_iterations
    cfg = load_config(TINY_PRETRAIN)
    assert rescale_iterations(cfg, 1) == {}
    assert set(rescale_iterations(cfg, 4)) <= {'default_hooks.logger.interval'}  # by_epoch + convert_to_iter_based


def test_batchnorm_models_are_measured_from_batch_two():
    assert plan_tool.measure_step(TINY_SEG, batch=1, with_cp=False, device='cpu', options={})['min_batch'] == 2
    assert plan_tool.measure_step(TINY_PROBE, batch=1, with_cp=False, device='cpu', options={})['min_batch'] == 2
    result = plan_tool.measure_step(TINY_PROBE, batch=2, with_cp=False, device='cpu', options={})
    assert result['memory_mib'] > 0 and result['loss'] == result['loss']
    assert plan_tool.shifted_batches([1, 2, 4], 2) == [2, 3, 5] and plan_tool.shifted_batches([2, 4], 2) == [2, 4]


def test_cli_shifts_the_batches_of_a_batchnorm_model(monkeypatch, capsys):
    asked = []

    def batchnorm_curve(config, batch, with_cp, device, options):
        asked.append(batch)
        if batch < 2:
            raise plan_tool.NeedsLargerBatch(2)
        return (1 + 0.01 * batch) * GIB
    monkeypatch.setattr(plan_tool, 'measure_in_fresh_process', batchnorm_curve)
    plan_tool.main([TINY_PROBE, '--gpus', '1', '--gpu-memory', '8GB', '--batches', '1', '2', '4'])
    out = capsys.readouterr().out
    assert 'BatchNorm in training mode' in out and 'measuring at batch 2, 3, 5 instead' in out
    assert asked == [1, 2, 3, 5, 2, 3, 5]
    assert 'residual spread 0.0 MiB (0.0 % of the mean) over 3 batches' in out


def test_the_fit_reports_its_spread():
    assert MemoryFit.fit({1: 100, 2: 200}).spread_mib is None
    assert 'no residual' in MemoryFit.fit({1: 100, 2: 200}).describe_spread()
    noisy = MemoryFit.fit({2: 1000, 4: 1100, 8: 1200})  # residuals -14.3, 21.4, -7.1 MiB: sqrt(714.3 / 1)
    assert noisy.spread_mib == pytest.approx(26.73, abs=0.01)
    assert noisy.spread_pct == pytest.approx(100 * noisy.spread_mib / 1100)
    assert '26.7 MiB (2.4 % of the mean) over 3 batches' in noisy.describe_spread()


def test_plan_keeps_batchnorm_models_at_two_per_device():
    recipe = Recipe(per_device_batch=7, devices=1, accumulation=1, lr=0.1, base_batch=7, lr_follows_batch=True)
    fits = {False: MemoryFit(0, GIB), True: MemoryFit(0, GIB)}
    assert make_plan(recipe, fits, 1, 3.5 * GIB, margin=0).per_device_batch == 1  # 7 x 1 fits 3 at most
    plan = make_plan(recipe, fits, 1, 3.5 * GIB, margin=0, min_batch=2)
    assert plan.per_device_batch >= 2
