"""The README's main command, tools/demo.py, end to end at a tiny scale: `--quick` on a 64-image pool (2
pretraining epochs, 3 % of each fine-tuning schedule) runs every stage with its progress line, prints the summary
table, and writes a report whose numbers and pictures are real; `--skip-pretrain` with 2 seeds adds the
label-efficiency picture. About 1.5 minutes on 2 cores (the later runs start beside the first)."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from helpers.paths import REPO

from mae_transfer.tools.demo.plan import LABEL_BUDGETS, LABEL_EFFICIENCY_TASK, TASKS

DEMO = REPO / 'tools' / 'demo.py'


def start_demo(cwd: Path, *options: str, threads: Optional[int] = None) -> subprocess.Popen:
    """The demo in `cwd`, its console in cwd/stdout.txt and cwd/stderr.txt: files can be read while it runs, and
    never stall it as an unread pipe would. `threads`: torch's CPU threads (default: all cores)."""
    # The demo's data folders are relative (data/...), so a temporary working directory keeps the repository's
    # own data/ untouched.
    env = dict(os.environ) if threads is None else dict(os.environ, OMP_NUM_THREADS=str(threads))
    with open(cwd / 'stdout.txt', 'w') as out, open(cwd / 'stderr.txt', 'w') as err:
        return subprocess.Popen([sys.executable, str(DEMO), '--work-dir', 'wd', '--num-pictures', '1', *options],
                                cwd=cwd, env=env, stdout=out, stderr=err)


def finished(process: subprocess.Popen, cwd: Path) -> subprocess.CompletedProcess:
    process.wait(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, (cwd / 'stdout.txt').read_text(),
                                       (cwd / 'stderr.txt').read_text())


def linked_files(report: Path):
    text = report.read_text()
    return re.findall(r'!\[[^\]]*\]\(([^)]+)\)', text) + re.findall(r'<img src="([^"]+)"', text)


@dataclass
class DemoRuns:
    quick_dir: Path  # the --quick run's working directory (work dir wd/)
    seeds_dir: Path  # a working directory whose wd/pretrain is a copy of the --quick run's
    seeds: subprocess.Popen  # --skip-pretrain with 2 seeds in seeds_dir
    empty_dir: Path  # a working directory without a pretraining checkpoint
    empty: subprocess.Popen  # --skip-pretrain there


@pytest.fixture(scope='module')
def demo_runs(tmp_path_factory) -> Iterator[DemoRuns]:
    """The --quick run, and the --skip-pretrain runs started as soon as its pretraining checkpoint is written.

    A demo process keeps about one core busy (tiny models: mostly Python), so the 2-seed run fine-tunes beside
    the --quick run's fine-tuning stages rather than after them, in a working directory of its own.
    """
    cwd, seeds_dir, empty_dir = (tmp_path_factory.mktemp(name) for name in ('demo', 'demo_seeds', 'demo_empty'))
    quick = start_demo(cwd, '--quick', '--epochs', '2', '--num-images', '64', '--scale', '0.03')
    started: List[subprocess.Popen] = []
    try:
        deadline = time.time() + 900
        while ('MAE checkpoint:' not in (cwd / 'stdout.txt').read_text() and quick.poll() is None
               and time.time() < deadline):
            time.sleep(0.5)
        pretrain = cwd / 'wd' / 'pretrain'
        if (pretrain / 'epoch_2.pth').is_file():
            # what --skip-pretrain finds after a demo run in its work dir: the folder, its pointer to the checkpoint
            shutil.copytree(pretrain, seeds_dir / 'wd' / 'pretrain')
            (seeds_dir / 'wd' / 'pretrain' / 'last_checkpoint').write_text(
                str(seeds_dir / 'wd' / 'pretrain' / 'epoch_2.pth'))
        # one thread each beside the --quick run: two processes of two threads on 2 cores spend the gain waiting
        started = [start_demo(seeds_dir, '--skip-pretrain', '--tasks', LABEL_EFFICIENCY_TASK, '--seeds', '2',
                              '--scale', '0.03', threads=1),
                   start_demo(empty_dir, '--skip-pretrain', '--tasks', 'seg', threads=1)]
        result = finished(quick, cwd)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield DemoRuns(cwd, seeds_dir, started[0], empty_dir, started[1])
    finally:
        for process in [quick, *started]:  # still running when a test failed or was deselected
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope='module')
def demo_dir(demo_runs: DemoRuns) -> Path:
    return demo_runs.quick_dir


def test_quick_runs_every_stage_with_a_concise_console_and_the_full_log_in_the_work_dir(demo_dir):
    stdout = (demo_dir / 'stdout.txt').read_text()
    stages = 1 + len(TASKS) * 2  # pretraining + every task from MAE and from random, one seed
    for stage in range(1, stages + 1):
        assert re.search(rf'\[demo {stage}/{stages}\] .* elapsed .*, about .* left', stdout), stage
    assert 'Iter(train)' not in stdout and 'Epoch(train)' not in stdout  # mmengine's lines go to the log
    log = (demo_dir / 'wd' / 'demo.log').read_text()
    assert 'Epoch(train)' in log and 'Iter(train)' in log
    # the summary table: one row per task metric, with the verdict
    for task in TASKS.values():
        for title in task.metrics.values():
            assert re.search(rf'^{task.name} +{re.escape(title)} +\S+ +\S+ +[+-]\d', stdout, re.M), (task.name, title)
    assert 'Report: wd/report.md' in stdout


def test_metrics_hold_every_run_and_the_table_matches_them(demo_dir):
    work_dir = demo_dir / 'wd'
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    assert metrics['setting']['seeds'] == 1 and metrics['setting']['pool_images'] == 64
    runs = {(r['task'], r['init']): r for r in metrics['runs']}
    assert sorted(runs) == sorted((task, init) for task in TASKS for init in ('mae', 'random'))
    for (task, init), run in runs.items():
        for key in TASKS[task].metrics:
            assert math.isfinite(run['metrics'][key]), (task, init, key)
    text = (work_dir / 'report.md').read_text()
    seg = next(s for s in metrics['summary'] if s['task'] == 'seg' and s['metric'] == 'mIoU')
    row = next(line for line in text.splitlines() if line.startswith('| seg | mIoU |'))
    mae_cell, random_cell, difference = (cell.strip() for cell in row.strip('|').split('|')[2:5])
    assert float(mae_cell) == pytest.approx(seg['mae_mean'], abs=0.05)
    assert float(random_cell) == pytest.approx(seg['random_mean'], abs=0.05)
    assert float(difference) == pytest.approx(seg['mae_mean'] - seg['random_mean'], abs=0.1)
    assert seg['verdict'] in row


def test_report_shows_the_knn_curve_and_only_existing_pictures(demo_dir):
    work_dir = demo_dir / 'wd'
    text = (work_dir / 'report.md').read_text()
    knn = re.search(r'k-NN top-1 of the encoder .*: ([\d.]+) % at iteration 0 .*, ([\d.]+) % at iteration (\d+); '
                    r'the monitor cost ([\d.]+) s = ([\d.]+) %', text)
    assert knn and int(knn.group(3)) > 0, text[:2000]
    links = linked_files(work_dir / 'report.md')
    for part in ('plots/pretraining.png', 'pretrain/reconstructions/', 'det/mae/', 'det/random/', 'seg/mae/',
                 'pose/random/'):
        assert any(link.startswith(part) for link in links), part
    for link in links:
        assert (work_dir / link).is_file() and (work_dir / link).stat().st_size > 1000, link
    assert (work_dir / 'pretrain' / 'epoch_2.pth').is_file()
    assert 'Label efficiency' not in text  # --quick runs one budget


def test_skip_pretrain_with_two_seeds_draws_the_label_efficiency_picture(demo_runs):
    demo_dir = demo_runs.seeds_dir
    result = finished(demo_runs.seeds, demo_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'MAE checkpoint: \S*wd/pretrain/epoch_2\.pth', result.stdout), result.stdout[-2000:]
    runs = len(LABEL_BUDGETS) * 2 * 2  # budgets x starts x seeds
    assert f'[demo 1/{runs}] {LABEL_EFFICIENCY_TASK}' in result.stdout and 'MAE pretraining' not in result.stdout
    metrics = json.loads((demo_dir / 'wd' / 'metrics.json').read_text())
    assert sorted({(r['labels'], r['seed']) for r in metrics['runs']}) == [
        (labels, seed) for labels in sorted(LABEL_BUDGETS) for seed in (0, 1)]
    text = (demo_dir / 'wd' / 'report.md').read_text()
    assert '## Label efficiency' in text and (demo_dir / 'wd' / 'plots' / 'label_efficiency.png').is_file()
    assert re.search(r'^\| probe \| top-1 \| [\d.]+ \([\d.]+-[\d.]+\) \|', text, re.M)  # mean (min-max) of 2 seeds

    empty = finished(demo_runs.empty, demo_runs.empty_dir)
    assert empty.returncode != 0 and 'no pretraining checkpoint in wd/pretrain' in empty.stderr
