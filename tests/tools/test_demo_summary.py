"""The demo's plan and verdicts, without running anything: which runs, in which order, and what the table says."""
from types import SimpleNamespace

import pytest

from mae_transfer.tools.demo.plan import INITS, LABEL_BUDGETS, LABEL_EFFICIENCY_TASK, TASKS, fine_tune_runs
from mae_transfer.tools.demo.summary import Spread, compare, label_curve


def result(task, init, seed, labels, value):
    key = next(iter(TASKS[task].metrics))
    return SimpleNamespace(run=SimpleNamespace(task=task, init=init, seed=seed, labels=labels),
                           metrics={key: value})


def test_runs_are_seed_major_with_both_starts_and_the_extra_budgets_last():
    runs = fine_tune_runs(['seg', LABEL_EFFICIENCY_TASK], seeds=2, label_efficiency=True)
    main = [r for r in runs if r.labels == TASKS[r.task].labels]
    assert [(r.seed, r.task, r.init) for r in main[:4]] == [
        (0, 'seg', 'mae'), (0, 'seg', 'random'),
        (0, LABEL_EFFICIENCY_TASK, 'mae'), (0, LABEL_EFFICIENCY_TASK, 'random')]
    extra = runs[len(main):]
    assert all(r.task == LABEL_EFFICIENCY_TASK and r.labels != TASKS[r.task].labels for r in extra)
    assert len(extra) == (len(LABEL_BUDGETS) - 1) * 2 * len(INITS)
    assert [r.draws_pictures for r in runs].count(True) == 2 * len(INITS)  # seed 0 at the main budget, per task
    assert fine_tune_runs(['seg'], seeds=1, label_efficiency=True) == fine_tune_runs(['seg'], 1, False)


def test_verdict_needs_the_mae_mean_above_the_best_random_seed():
    results = [result('seg', 'mae', 0, 24, 60.0), result('seg', 'mae', 1, 24, 52.0),
               result('seg', 'random', 0, 24, 55.0), result('seg', 'random', 1, 24, 45.0)]
    (miou, acc) = compare(results, ['seg'])
    assert miou.mae == Spread((60.0, 52.0)) and miou.mae.mean == 56.0 and miou.random.high == 55.0
    assert miou.wins and miou.verdict.startswith('MAE better') and miou.digits == 1
    assert miou.mae.text(1) == '56.0 (52.0-60.0)'
    assert acc.verdict == 'not measured'  # aAcc was not in these results

    results[0] = result('seg', 'mae', 0, 24, 57.0)  # mean 54.5: above random's mean (50), below its best (55)
    assert compare(results, ['seg'])[0].verdict.startswith('MAE ahead on average')
    results[0] = result('seg', 'mae', 0, 24, 40.0)
    assert compare(results, ['seg'])[0].verdict == 'no gain from MAE here'


def test_coco_fractions_get_three_digits_and_label_curves_group_by_budget():
    det = compare([result('det', 'mae', 0, 32, 0.21), result('det', 'random', 0, 32, 0.11)], ['det'])[0]
    assert det.digits == 3 and det.mae.text(3) == '0.210' and det.wins  # one seed: no range
    noise = compare([result('det', 'mae', 0, 32, 0.007), result('det', 'random', 0, 32, 0.003)], ['det'])[0]
    assert not noise.learned and not noise.wins and noise.verdict.startswith('not learned from either start')
    task = TASKS[LABEL_EFFICIENCY_TASK]
    curve = label_curve([result(task.name, 'mae', s, b, 10.0 * b + s) for b in LABEL_BUDGETS for s in (0, 1)]
                        + [result('seg', 'mae', 0, 24, 1.0)], task.name, next(iter(task.metrics)))
    assert list(curve) == ['mae'] and list(curve['mae']) == sorted(LABEL_BUDGETS)
    assert curve['mae'][LABEL_BUDGETS[0]].mean == pytest.approx(10.0 * LABEL_BUDGETS[0] + 0.5)
