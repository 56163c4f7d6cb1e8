"""ONNX benchmark: per task's tiny twin, the export's differences from PyTorch, the test metric with PyTorch and
with onnxruntime, and video throughput with both backends.

    mae-transfer benchmark export                         # det, seg, pose, cls; trains each twin once
    mae-transfer benchmark export --tasks seg pose --frames 60

Each tiny twin is trained with its config as shipped on its synthetic set (written under data/ if missing) into
`<work-dir>/<task>/`; a later run reuses that checkpoint. The video is made of the task's test images (resized to
`--frame-size`); throughput is frames per second of `mae-transfer infer`'s loop (predict, draw, encode), on
however many threads torch uses here. Numbers are printed, never asserted: machines are shared and noisy.
"""
import argparse
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional


TINY_CONFIGS = {
    'det': 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py',
    'seg': 'seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py',
    'pose': 'pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py',
    'cls': 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
}
METRICS = {'det': 'coco/bbox_mAP', 'seg': 'mIoU', 'pose': 'coco/AP', 'cls': 'accuracy/top1'}


def trained_checkpoint(task: str, work_dir: Path) -> Path:
    """The tiny twin's last checkpoint, trained now unless an earlier run left one."""
    from mae_transfer.datasets.synthetic import ensure_synthetic
    from mae_transfer.tools.train import main as train_main

    pointer = work_dir / 'last_checkpoint'
    if not pointer.is_file():
        ensure_synthetic(task)
        train_main([TINY_CONFIGS[task], '--work-dir', str(work_dir)])
    return Path(pointer.read_text().strip())


def _clip(task: str, path: Path, frames: int, size) -> Path:
    """A video of the task's test images, each resized to `size` (width, height), in turn."""
    import cv2

    from mae_transfer.apis.media import IMAGE_SUFFIXES, VideoWriter
    from mae_transfer.datasets.synthetic import ensure_synthetic

    folder = Path(ensure_synthetic(task))
    images = sorted(p for p in folder.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES
                    and any('val' in part for part in p.relative_to(folder).parts))
    with VideoWriter(path, 25, size) as writer:
        for index in range(frames):
            writer.write(cv2.resize(cv2.imread(str(images[index % len(images)])), size))
    return path


def video_fps(task: str, checkpoint: Path, onnx: Optional[Path], clip: Path, out_dir: Path) -> float:
    """Frames per second of `annotate` over the clip (model built before the clock starts)."""
    from mae_transfer.apis import init_model
    from mae_transfer.apis.annotate import annotate
    from mae_transfer.apis.media import VideoReader
    from mae_transfer.utils.configs import load_config

    model = init_model(load_config(TINY_CONFIGS[task]), str(checkpoint))
    if onnx is not None:
        from mae_transfer.export import attach_onnxruntime
        attach_onnxruntime(model, onnx)
    with VideoReader(clip) as video:
        frames = sum(1 for _ in video)
    start = time.perf_counter()
    annotate(model, [clip], out_dir, json_lines=True)
    return frames / (time.perf_counter() - start)


def measure(task: str, work_dir: Path, frames: int, frame_size) -> Dict:
    from mae_transfer.apis import init_model
    from mae_transfer.export import export_onnx
    from mae_transfer.tools.test import main as test_main
    from mae_transfer.utils.configs import load_config

    task_dir = work_dir / task
    checkpoint = trained_checkpoint(task, task_dir)
    onnx = task_dir / f'{task}.onnx'
    report = export_onnx(init_model(load_config(TINY_CONFIGS[task]), str(checkpoint)), onnx,
                         checkpoint=str(checkpoint))
    print(report.table())
    metrics = {}
    for backend in ('pytorch', 'onnxruntime'):
        out = task_dir / f'test_{backend}.json'
        extra = ['--backend', 'onnxruntime', '--onnx', str(onnx)] if backend == 'onnxruntime' else []
        test_main([TINY_CONFIGS[task], str(checkpoint), '--work-dir', str(task_dir / f'test_{backend}'),
                   '--out', str(out), *extra])
        metrics[backend] = json.loads(out.read_text())[METRICS[task]]
    result = dict(task=task, metric=METRICS[task], pytorch=metrics['pytorch'], onnxruntime=metrics['onnxruntime'],
                  max_relative=max(d.relative for d in report.differences), export_s=report.export_seconds)
    if task in ('det', 'seg', 'pose'):
        clip = _clip(task, task_dir / 'clip.mp4', frames, frame_size)
        result['fps_pytorch'] = video_fps(task, checkpoint, None, clip, task_dir / 'video_pytorch')
        result['fps_onnxruntime'] = video_fps(task, checkpoint, onnx, clip, task_dir / 'video_onnxruntime')
    return result


def print_table(results: List[Dict], frames: int, frame_size) -> None:
    import torch
    print(f'\nONNX (torchscript exporter, opset 17) vs PyTorch, tiny twins, {torch.get_num_threads()} threads; '
          f'video: {frames} frames of {frame_size[0]} x {frame_size[1]}')
    print(f'{"task":<5} {"metric":<15} {"PyTorch":>9} {"onnxruntime":>12} {"max rel diff":>13} '
          f'{"video fps (PyTorch / ORT)":>27}')
    for r in results:
        fps = f'{r["fps_pytorch"]:.1f} / {r["fps_onnxruntime"]:.1f}' if 'fps_pytorch' in r else '-'
        print(f'{r["task"]:<5} {r["metric"]:<15} {r["pytorch"]:>9.4f} {r["onnxruntime"]:>12.4f} '
              f'{r["max_relative"]:>13.2e} {fps:>27}')


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', nargs='+', choices=list(TINY_CONFIGS), default=list(TINY_CONFIGS))
    parser.add_argument('--work-dir', default='work_dirs/benchmark_export')
    parser.add_argument('--frames', type=int, default=48, help='frames of the test video')
    parser.add_argument('--frame-size', type=int, nargs=2, default=(320, 240), metavar=('WIDTH', 'HEIGHT'))
    args = parser.parse_args(argv)
    os.environ.setdefault('MAE_TRANSFER_NO_PROGRESS', '1')  # the table is the output
    results = [measure(task, Path(args.work_dir), args.frames, tuple(args.frame_size)) for task in args.tasks]
    print_table(results, args.frames, tuple(args.frame_size))
    (Path(args.work_dir) / 'results.json').write_text(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
