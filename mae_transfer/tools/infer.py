"""Run a trained model on image files and write pictures of its predictions.

    python tools/infer.py CONFIG CHECKPOINT img1.jpg img2.jpg --out-dir work_dirs/infer
    python tools/infer.py configs/det/...py det.pth photos/*.jpg --score-thr 0.5       # boxes, masks, classes
    python tools/infer.py configs/seg/...py seg.pth street.png                          # overlay + legend
    python tools/infer.py configs/pose/...py pose.pth crowd.jpg --boxes persons.json    # skeletons
    python tools/infer.py configs/pretrain/...py mae.pth photo.jpg                      # MAE reconstructions

The task is read from the config (mmdet scope: detection, mmseg scope: segmentation, our scope: pose,
classification or MAE pretraining); each task's `infer_images` in `mae_transfer.apis` draws its pictures. One
picture per input image, same file stem, in `--out-dir`.
"""
import argparse
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.config import DictAction

import mae_transfer  # noqa: F401  (registries and the checkpoint allowlist)
from mae_transfer.apis import task_module
from mae_transfer.tools import load_config_or_exit


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Predict on images and draw the predictions',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file the checkpoint was trained with (or a shipped config '
                                       'relative to configs/)')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--out-dir', default='work_dirs/infer', help='where the pictures go')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    parser.add_argument('--score-thr', type=float, default=None,
                        help='detection / keypoint score below which nothing is drawn')
    parser.add_argument('--boxes', default=None,
                        help='pose: person boxes, a COCO results JSON (image_id matched by file name) or '
                             'JSON {file name: [[x, y, w, h], ...]}; the whole image when left out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    missing = [path for path in [args.checkpoint, *args.images] if not osp.isfile(path)]
    if missing:
        raise SystemExit(f'file(s) not found: {", ".join(missing)}')
    cfg = load_config_or_exit(args.config)
    cfg.merge_from_dict(args.cfg_options)
    options: Dict[str, Any] = {name: value for name, value in
                               (('score_thr', args.score_thr), ('boxes', args.boxes)) if value is not None}
    # every task's module has infer_images(config, checkpoint, image_paths, out_dir, device, **options)
    written = task_module(cfg).infer_images(cfg, args.checkpoint, args.images, args.out_dir, device=args.device,
                                            **options)
    for path in written:
        print(path)


if __name__ == '__main__':
    main()
