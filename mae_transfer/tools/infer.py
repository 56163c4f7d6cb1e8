"""Run a trained model on images, folders of images and videos; write annotated pictures or videos.

    mae-transfer infer CONFIG CHECKPOINT img1.jpg img2.jpg --out-dir work_dirs/infer
    mae-transfer infer configs/det/...py det.pth clip.mp4 --json-lines                  # annotated video + JSON lines
    mae-transfer infer configs/seg/...py seg.pth frames/ --json-lines                   # a folder: one picture each
    mae-transfer infer configs/pose/...py pose.pth crowd.jpg --boxes persons.json       # skeletons in given boxes
    mae-transfer infer configs/pose/...py pose.pth clip.mp4 --det-config DET_CONFIG --det-checkpoint det.pth
    mae-transfer infer configs/cls/...py cls.pth cat.jpg --backend onnxruntime --onnx cls.onnx
    mae-transfer infer configs/pretrain/...py mae.pth photo.jpg                         # MAE reconstructions

The task is read from the config (mmdet scope: detection, mmseg scope: segmentation, our scope: pose,
classification or MAE pretraining). Per input, in `--out-dir`:

    clip.mp4   -> clip.mp4 (same frame rate and size; det, seg and pose) and clip.jsonl with --json-lines
    frames/    -> frames/<stem>.png|jpg, frames.jsonl
    a.jpg ...  -> a.png|jpg, images.jsonl

A JSON line holds the frame index and time (or the file name) and the task's result: det instances (box, score,
class, RLE mask), seg segments (class, share, RLE mask), pose persons (keypoints with scores, box), cls top-5.
A video that cannot be decoded to its end stops with an error after writing what it decoded; an unreadable
image in a folder is logged and skipped, one named on the command line stops the command.

`--backend onnxruntime --onnx FILE` runs the graph exported by `mae-transfer export` in onnxruntime and keeps
everything else (pipeline, decoding, drawing) as with PyTorch; CHECKPOINT still gives the class names and what
the graph does not hold (detection's RPN and RoI heads).
"""
import argparse
import functools
import os.path as osp
from pathlib import Path
from typing import Any, Dict, List, Optional

from mmengine.config import DictAction

import mae_transfer  # noqa: F401  (registries and the checkpoint allowlist)
from mae_transfer.tools import load_config_or_exit
from mae_transfer.utils.configs import CFG_OPTIONS_RULE, config_task, merge_cfg_options


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Predict on images, folders and videos and draw the predictions',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file the checkpoint was trained with (or a shipped config '
                                       'relative to configs/)')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('inputs', nargs='+', help='image files, folders of images, video files')
    parser.add_argument('--out-dir', default='work_dirs/infer', help='where the pictures and videos go')
    parser.add_argument('--json-lines', action='store_true', help='also write the results as JSON lines')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                        help='onnxruntime: run the graph of --onnx in place of the PyTorch network')
    parser.add_argument('--onnx', help='the .onnx file of `mae-transfer export` (with --backend onnxruntime)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    parser.add_argument('--allow-partial', action='store_true',
                        help='go on when the checkpoint leaves parts of the model (neck, heads) at their initial values')
    parser.add_argument('--score-thr', type=float, default=None,
                        help='detection / keypoint score below which nothing is drawn')
    parser.add_argument('--boxes', default=None,
                        help='pose: person boxes, a COCO results JSON (image_id matched by file name) or '
                             'JSON {file name: [[x, y, w, h], ...]}; the whole image when left out')
    parser.add_argument('--det-config', help='pose: a detection config whose detector gives the person boxes')
    parser.add_argument('--det-checkpoint', help='pose: the detector\'s trained checkpoint')
    parser.add_argument('--det-class', default='person', help='pose: the detector class taken as persons')
    parser.add_argument('--bbox-thr', type=float, default=0.3, help='pose: detector boxes scoring below are ignored')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help=f'override config entries; {CFG_OPTIONS_RULE}')
    args = parser.parse_args(argv)
    if (args.backend == 'onnxruntime') != (args.onnx is not None):
        parser.error('--backend onnxruntime and --onnx FILE go together')
    if (args.det_config is None) != (args.det_checkpoint is None):
        parser.error('--det-config and --det-checkpoint go together')
    return args


def _person_detector(args: argparse.Namespace):
    """Boxes of `--det-class` from the detector of --det-config / --det-checkpoint, per frame."""
    from mae_transfer.apis import detect
    detector = detect.init_model(load_config_or_exit(args.det_config), args.det_checkpoint, device=args.device)
    classes = list(detector.dataset_meta['classes'])
    if args.det_class not in classes:
        raise SystemExit(f'the detector of {args.det_config} has no class {args.det_class!r}; its classes: '
                         f'{", ".join(classes)} (choose one with --det-class)')
    return functools.partial(detect.person_boxes, detector, class_name=args.det_class, score_thr=args.bbox_thr)


def _image_files(inputs: List[str]) -> List[str]:
    from mae_transfer.apis.media import is_video, list_images
    files: List[str] = []
    for source in inputs:
        if osp.isdir(source):
            files += [str(path) for path in list_images(source)]
        elif not is_video(source):
            files.append(source)
    return files


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    missing = [path for path in [args.checkpoint, *args.inputs, *filter(None, [args.onnx, args.det_checkpoint])]
               if not osp.exists(path)]
    if missing:
        raise SystemExit(f'not found: {", ".join(missing)}')
    cfg = load_config_or_exit(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    from mae_transfer.apis import init_model
    from mae_transfer.apis.annotate import annotate
    from mae_transfer.apis.media import MediaError
    from mae_transfer.utils.images import UnreadableImageError

    try:
        if config_task(cfg) == 'pretrain':
            if args.backend != 'pytorch':
                raise SystemExit('the pretraining export holds the MAE encoder; reconstructions run with PyTorch')
            from mae_transfer.apis.reconstruct import infer_images
            from mae_transfer.apis.media import list_images
            in_folders = [str(path) for source in args.inputs if osp.isdir(source) for path in list_images(source)]
            written = infer_images(cfg, args.checkpoint, _image_files(args.inputs), args.out_dir, device=args.device,
                                   skippable=in_folders)
        else:
            model = init_model(cfg, args.checkpoint, device=args.device, allow_partial=args.allow_partial)
            runtime = None
            if args.backend == 'onnxruntime':
                from mae_transfer.export import attach_onnxruntime
                runtime = attach_onnxruntime(model, args.onnx, checkpoint=args.checkpoint)
            options: Dict[str, Any] = dict(score_thr=args.score_thr)
            if args.boxes is not None:
                from mae_transfer.apis.pose import load_boxes
                options['boxes'] = load_boxes(args.boxes, _image_files(args.inputs), args.bbox_thr)
            if args.det_config is not None:
                options['person_detector'] = _person_detector(args)
            written = annotate(model, args.inputs, args.out_dir, json_lines=args.json_lines, **options)
            if runtime is not None:
                print(f'onnxruntime ran {Path(args.onnx).name} {runtime.calls} times')
    except (MediaError, UnreadableImageError) as error:  # one line naming the file, no traceback
        raise SystemExit(str(error)) from error
    for path in written:
        print(path)


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer infer')
