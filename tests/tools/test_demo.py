"""The README's main command, tools/demo.py, end to end at a tiny scale (2 pretraining epochs on 64 generated
images, 2 % of each fine-tuning schedule): every stage runs, the report's numbers and pictures are real files
and values, and --skip-pretrain reuses the checkpoint. About 2.5 minutes on 2 cores."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import REPO

DEMO = REPO / 'tools' / 'demo.py'
TASK_METRICS = {'det': ['coco/bbox_mAP', 'coco/segm_mAP'], 'seg': ['mIoU', 'mAcc', 'aAcc'],
                'pose': ['coco/AP', 'coco/AR']}


def run_demo(cwd: Path, *options: str) -> subprocess.CompletedProcess:
    # The demo's data folders are relative (data/synthetic_*), so a temporary working directory keeps the
    # repository's own data/ untouched.
    return subprocess.run([sys.executable, str(DEMO), '--work-dir', 'wd', '--num-pictures', '1', *options],
                          cwd=cwd, capture_output=True, text=True, timeout=900)


def linked_files(report: Path):
    text = report.read_text()
    return re.findall(r'!\[[^\]]*\]\(([^)]+)\)', text) + re.findall(r'<img src="([^"]+)"', text)


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp('demo')
    result = run_demo(cwd, '--epochs', '2', '--num-images', '64', '--scale', '0.02')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (cwd / 'stdout.txt').write_text(result.stdout)
    return cwd


def test_every_stage_runs_with_progress_and_reports_finite_metrics(demo_dir):
    stdout = (demo_dir / 'stdout.txt').read_text()
    for stage in range(1, 8):  # pretraining + 3 tasks x (from MAE, from random)
        assert re.search(rf'\[demo {stage}/7\] .* elapsed .*, about .* left', stdout), stage
    metrics = json.loads((demo_dir / 'wd' / 'metrics.json').read_text())
    assert sorted(metrics) == sorted(TASK_METRICS)
    for task, keys in TASK_METRICS.items():
        for init in ('mae', 'random'):
            for key in keys:
                assert math.isfinite(metrics[task][init][key]), (task, init, key)


def test_report_holds_the_comparison_and_only_existing_pictures(demo_dir):
    work_dir = demo_dir / 'wd'
    report = work_dir / 'report.md'
    text = report.read_text()
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    # the table shows what the run measured: from MAE, from random and their difference
    seg_row = next(line for line in text.splitlines() if line.startswith('| seg | mIoU |'))
    mae_value, random_value, difference = (float(cell) for cell in seg_row.strip('|').split('|')[2:5])
    assert mae_value == pytest.approx(metrics['seg']['mae']['mIoU'], abs=1e-3)
    assert random_value == pytest.approx(metrics['seg']['random']['mIoU'], abs=1e-3)
    assert difference == pytest.approx(mae_value - random_value, abs=2e-3)
    links = linked_files(report)
    for part in ('pretrain/reconstructions/', 'det/mae/pictures/', 'det/random/pictures/', 'seg/mae/pictures/',
                 'pose/random/pictures/'):
        assert any(link.startswith(part) for link in links), part
    for link in links:
        assert (work_dir / link).is_file() and (work_dir / link).stat().st_size > 1000, link
    assert (work_dir / 'pretrain' / 'epoch_2.pth').is_file()


def test_skip_pretrain_reuses_the_checkpoint_and_needs_one(demo_dir, tmp_path):
    result = run_demo(demo_dir, '--skip-pretrain', '--tasks', 'seg', '--scale', '0.02')
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"MAE checkpoint: {demo_dir / 'wd' / 'pretrain' / 'epoch_2.pth'}" in result.stdout
    assert '[demo 1/2] seg' in result.stdout and 'MAE pretraining' not in result.stdout
    assert sorted(json.loads((demo_dir / 'wd' / 'metrics.json').read_text())) == ['seg']

    empty = run_demo(tmp_path, '--skip-pretrain', '--tasks', 'seg')
    assert empty.returncode != 0 and 'no pretraining checkpoint in wd/pretrain' in empty.stderr
