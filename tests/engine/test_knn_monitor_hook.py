"""KNNMonitorHook: the weighted k-NN vote, its cadence on a real tiny run, its cost accounting, off and errors,
and the --cfg-options switch of the ViT-B recipe."""
import argparse
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from mae_transfer.datasets.synthetic import generate_class_folders
from mae_transfer.engine import KNNMonitorHook, knn_accuracy
from mae_transfer.engine import knn_monitor_hook
from mae_transfer.models.mae_pretrainer import MAEPretrainer
from mae_transfer.registry import HOOKS
from mae_transfer.tools import use_own_instances
from mae_transfer.utils.configs import CONFIG_ROOT
from mae_transfer.utils.report import read_scalars

PRETRAIN = CONFIG_ROOT / 'pretrain'
TINY = PRETRAIN / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
BASE = PRETRAIN / 'mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py'


# ---- (a) the vote, by hand ---------------------------------------------------------------------------------

def test_knn_accuracy_nearest_neighbour_on_separated_clusters():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])  # [4, 2]
    bank_labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[5.0, 0.5], [0.2, 3.0], [3.0, 0.1]])  # [3, 2], not unit: normalised inside
    assert knn_accuracy(bank, bank_labels, queries, torch.tensor([0, 1, 0]), num_classes=2, k=1) == 100.0
    # one wrong label out of three
    assert knn_accuracy(bank, bank_labels, queries, torch.tensor([0, 1, 1]), num_classes=2, k=1) == \
        pytest.approx(100 * 2 / 3)


def test_knn_accuracy_weighted_vote_beats_the_majority_and_k_is_clamped():
    # Query 0 = [1, 0]: one class-0 neighbour at cosine 1, two class-1 neighbours at cosine 0.5.
    #   T = 0.07: class 0 scores exp(1 / 0.07) = e^14.3, class 1 scores 2 exp(0.5 / 0.07) = 2 e^7.1 -> class 0.
    #   A plain majority of the 3 neighbours says class 1.
    # Query 1 = [0, 1]: cosine 0 to the class-0 sample, 0.866 to both class-1 samples -> class 1 either way.
    bank = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(0.75)], [0.5, math.sqrt(0.75)]])  # [3, 2], unit rows
    bank_labels = torch.tensor([0, 1, 1])
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    # k = 20 > 3 bank samples: clamped, all three vote
    assert knn_accuracy(bank, bank_labels, queries, labels, num_classes=2, k=20, temperature=0.07) == 100.0
    assert knn_accuracy(bank, bank_labels, queries, labels, num_classes=2, k=3, temperature=0.07) == 100.0
    # a very high temperature makes the weights ~equal: the majority vote, query 0 is then wrong
    assert knn_accuracy(bank, bank_labels, queries, labels, num_classes=2, k=20, temperature=1e4) == 50.0
    # k = 1: only the nearest votes
    assert knn_accuracy(bank, bank_labels, queries, labels, num_classes=2, k=1) == 100.0


def test_knn_accuracy_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match='same D'):
        knn_accuracy(torch.ones(3, 2), torch.zeros(3), torch.ones(2, 4), torch.zeros(2), num_classes=1)
    with pytest.raises(ValueError, match='temperature'):
        knn_accuracy(torch.ones(3, 2), torch.zeros(3), torch.ones(2, 2), torch.zeros(2), 1, temperature=0)


# ---- a small labelled set and a tiny model -----------------------------------------------------------------

@pytest.fixture(scope='module')
def labeled_root(tmp_path_factory):
    """3 classes x 5 train (the bank, also the pretraining images) and 2 val images (the queries), 40-64 px."""
    root = tmp_path_factory.mktemp('labeled')
    generate_class_folders(root, num_classes=3, train_per_class=5, val_per_class=2, image_size=(40, 64), seed=3)
    return root


class _Visualizer:
    def __init__(self):
        self.records = []

    def add_scalars(self, scalars, step=0, **_):
        self.records.append({**scalars, 'step': step})


def fake_runner(model):
    """What the hook uses of a runner: model, logger, visualizer, iter."""
    return SimpleNamespace(model=model, logger=MMLogger.get_current_instance(), visualizer=_Visualizer(), iter=0)


def tiny_pretrainer():
    torch.manual_seed(0)
    return MAEPretrainer(arch='tiny', img_size=32, data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]))


def drive(hook, runner, iterations, clock=None, train_s=0.0):
    """Call the hook as mmengine's train loop does: before_train, after_train_iter per iteration, after_train."""
    hook.before_train(runner)
    for index in range(iterations):
        runner.iter = index  # the loop increments iter after the after_train_iter hooks
        if clock is not None:
            clock.t += train_s
        hook.after_train_iter(runner, index)
    runner.iter = iterations
    hook.after_train(runner)


# ---- (b) cadence on a real run -----------------------------------------------------------------------------

def test_cadence_on_a_tiny_pretraining_run(labeled_root, tmp_path):
    cfg = Config.fromfile(str(TINY))
    cfg.merge_from_dict({
        'work_dir': str(tmp_path), 'model.img_size': 64, 'model.decoder_depth': 1, 'train_cfg.max_epochs': 1,
        'train_dataloader.batch_size': 3, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': str(labeled_root / 'train'), 'train_dataloader.dataset.crop_size': 64,
        'auto_scale_lr.base_batch_size': 3, 'default_hooks.logger.interval': 1, 'default_hooks.checkpoint': None,
        'custom_hooks': [dict(type='KNNMonitorHook', data_root=str(labeled_root), interval=2, batch_size=8)],
    })
    use_own_instances(cfg, 'knn_test')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 5  # 15 images / batch 3

    records = read_scalars(tmp_path)
    knn = [(r['step'], r['knn/top1']) for r in records if 'knn/top1' in r]
    # before the first iteration, every 2, and the last (5) which is not a multiple of 2
    assert [step for step, _ in knn] == [0, 2, 4, 5]
    assert all(0.0 <= top1 <= 100.0 for _, top1 in knn)
    assert any('loss' in r for r in records), 'the training scalars land in the same file'
    cost = [r for r in records if 'knn/cost_s' in r]
    assert len(cost) == 1 and cost[0]['step'] == 5 and 0 < cost[0]['knn/cost_fraction'] < 1

    hook = next(h for h in runner.hooks if isinstance(h, KNNMonitorHook))
    assert hook.evaluations == 4 and [step for step, _ in hook.history] == [0, 2, 4, 5]
    assert hook.bank[0].shape == (15, 3, 64, 64) and hook.bank[0].dtype == torch.uint8  # cached once
    assert hook.queries[0].shape == (6, 3, 64, 64)
    assert hook.classes == ['ellipse', 'rectangle', 'triangle']
    assert runner.model.training, 'the model is back in training mode'
    # the logged value is the vote on the cached sets with the final weights (nothing changed after step 5)
    model = runner.model.eval()
    top1 = knn_accuracy(hook.embed(model, hook.bank[0]), hook.bank[1], hook.embed(model, hook.queries[0]),
                        hook.queries[1], num_classes=3)
    assert knn[-1][1] == pytest.approx(top1)


# ---- (c) cost accounting -----------------------------------------------------------------------------------

def test_cost_accounting_with_a_fake_clock(labeled_root, monkeypatch, log_records):
    clock = SimpleNamespace(t=100.0)
    monkeypatch.setattr(knn_monitor_hook, 'perf_counter', lambda: clock.t)
    hook = KNNMonitorHook(data_root=labeled_root, interval=2)
    modes = []
    real_load, real_embed = hook._load, hook.embed

    def slow_load(model):  # loading the images: 1 s
        clock.t += 1.0
        return real_load(model)

    def slow_embed(model, images):  # each embedding (bank, then queries): 3 s, so 6 s per evaluation
        modes.append(model.training)
        clock.t += 3.0
        return real_embed(model, images)

    monkeypatch.setattr(hook, '_load', slow_load)
    monkeypatch.setattr(hook, 'embed', slow_embed)
    model = tiny_pretrainer().train()
    runner = fake_runner(model)
    drive(hook, runner, iterations=4, clock=clock, train_s=10.0)

    # evaluations at 0, 2, 4; the last iteration (4) was just evaluated, so not again
    assert [step for step, _ in hook.history] == [0, 2, 4] and hook.evaluations == 3
    assert modes == [False] * 6 and model.training, 'eval mode while embedding, training mode restored'
    assert hook.load_s == 1.0
    assert hook.cost_s == 1.0 + 3 * 6.0  # 19 s
    assert hook.run_s == 19.0 + 4 * 10.0  # 59 s: the hook's work plus 4 training iterations
    assert hook.cost_fraction == pytest.approx(19.0 / 59.0)
    assert 'k-NN monitor: 3 evaluations took 19.0 s = 32.2 % of the run (59.0 s)' in log_records
    assert runner.visualizer.records[-1] == {'knn/cost_s': 19.0, 'knn/cost_fraction': pytest.approx(19 / 59),
                                             'step': 4}
    assert [r['step'] for r in runner.visualizer.records if 'knn/top1' in r] == [0, 2, 4]
    assert any(m.startswith('k-NN top-1 (k=20, T=0.07) at iter 2: ') and m.endswith(' %') for m in log_records)


def test_eval_mode_model_stays_in_eval_mode_and_cls_pool_works(labeled_root):
    model = tiny_pretrainer().eval()
    hook = KNNMonitorHook(data_root=labeled_root, interval=100, pool='cls', image_size=32)
    drive(hook, fake_runner(model), iterations=1)
    assert [step for step, _ in hook.history] == [0, 1] and not model.training


# ---- (d) off, and clear errors ---------------------------------------------------------------------------

def test_data_root_none_is_off(log_records):
    hook = KNNMonitorHook(data_root=None, interval=1)
    runner = fake_runner(tiny_pretrainer())
    drive(hook, runner, iterations=3)
    assert runner.visualizer.records == [] and hook.evaluations == 0 and hook.bank is None
    assert [m for m in log_records if 'KNNMonitorHook' in m or 'k-NN' in m] == \
        [m for m in log_records if 'KNNMonitorHook: off (data_root=None)' in m]
    assert len([m for m in log_records if 'KNNMonitorHook' in m]) == 1


def test_missing_folder_or_empty_split_is_a_clear_error(tmp_path):
    runner = fake_runner(tiny_pretrainer())
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match=str(missing / 'train')):
        KNNMonitorHook(data_root=missing).before_train(runner)
    (tmp_path / 'empty' / 'train' / 'cat').mkdir(parents=True)
    (tmp_path / 'empty' / 'val').mkdir()
    with pytest.raises(FileNotFoundError, match=f"KNNMonitorHook: .*{tmp_path / 'empty' / 'train'}"):
        KNNMonitorHook(data_root=tmp_path / 'empty').before_train(runner)


# ---- (e) the config switch ---------------------------------------------------------------------------------

def test_cfg_options_switch_the_hook_on_in_the_vit_b_recipe_and_its_children(tmp_path):
    cfg = Config.fromfile(str(BASE))
    assert cfg.custom_hooks[1] == dict(type='KNNMonitorHook', data_root=None, interval=5000, k=20,
                                       temperature=0.07)
    # exactly what tools/train.py's --cfg-options parses (mmengine DictAction) and merges
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options', f'custom_hooks.1.data_root={tmp_path}'])
    cfg.merge_from_dict(args.cfg_options)
    assert cfg.custom_hooks[0].type == 'ReconstructionHook', 'the other hook is untouched'
    assert cfg.custom_hooks[1].type == 'KNNMonitorHook' and cfg.custom_hooks[1].data_root == str(tmp_path)
    hook = HOOKS.build(cfg.custom_hooks[1])
    assert isinstance(hook, KNNMonitorHook) and hook.enabled and hook.interval == 5000
    for child in ('mae_vit-large-p16_8xb512-amp-coslr-800e_in1k-224x224.py',
                  'mae_vit-huge-p14_8xb512-amp-coslr-800e_in1k-224x224.py'):
        assert Config.fromfile(str(PRETRAIN / child)).custom_hooks[1].type == 'KNNMonitorHook'
