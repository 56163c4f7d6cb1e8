"""Export a trained model to ONNX, then check the file with onnxruntime against PyTorch on the same inputs.

    mae-transfer export cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py work_dirs/cls/iter_600.pth --out cls.onnx
    mae-transfer export seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py seg.pth --out seg.onnx --opset 17
    mae-transfer export pose/heatmap_vit-base-p16_8xb64-210e_coco-256x192.py pose.pth --out pose.onnx
    mae-transfer export pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py mae.pth --out encoder.onnx
    mae-transfer export det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py det.pth --out det.onnx

What each task's graph holds (inputs are normalised images [N, 3, H, W], N dynamic, H x W the config's size):
classification logits; segmentation logits at the crop size (sliding-window stitching stays in Python);
pose heatmaps of a batch of person crops (decoding and flip test stay in Python); the MAE encoder's features;
detection the backbone and feature pyramid (mmdet's RPN and RoI heads stay in PyTorch: mmdet 3's own ONNX path
imports `mmdet.core.export`, which mmdet 3 no longer has, and mmcv 2's RoIAlign and NMS export only through
mmdeploy's custom onnxruntime ops). docs/export.md has the details.

The check prints the largest absolute and relative difference per output and exits with status 1 when one exceeds
max |ORT - PyTorch| <= atol x range + rtol x max |PyTorch| (range: max - min of the PyTorch output, so that the
check tests small outputs such as heatmaps too). `mae-transfer infer/test ... --backend onnxruntime --onnx FILE`
then run the file inside our own inference and evaluation.
"""
import argparse
import os.path as osp
from typing import List, Optional

from mmengine.config import DictAction

import mae_transfer  # noqa: F401  (registries and the checkpoint allowlist)
from mae_transfer.tools import load_config_or_exit
from mae_transfer.utils.config_checks import check_writable_dir
from mae_transfer.utils.configs import CFG_OPTIONS_RULE, merge_cfg_options


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mae_transfer.export import DEFAULT_ATOL, DEFAULT_OPSET, DEFAULT_RTOL, EXPORTERS

    parser = argparse.ArgumentParser(description='Export a trained model to ONNX and check it against PyTorch',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config the checkpoint was trained with (or a shipped config relative to '
                                       'configs/)')
    parser.add_argument('checkpoint', help='trained checkpoint (pretraining: ours or an official MAE file)')
    parser.add_argument('--out', help='the .onnx file (default: work_dirs/export/<config name>.onnx)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--exporter', choices=EXPORTERS, default='torchscript',
                        help="PyTorch's exporter: 'torchscript' (tracing, every task) or 'dynamo' (torch.export; "
                             'opset 18+, not the segmentation graph with relative position bias)')
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('HEIGHT', 'WIDTH'),
                        help="spatial size of the graph's input (default: the config's)")
    parser.add_argument('--rtol', type=float, default=DEFAULT_RTOL,
                        help='tolerance of the check relative to the largest |PyTorch| value of each output')
    parser.add_argument('--atol', type=float, default=DEFAULT_ATOL,
                        help="tolerance of the check relative to each output's range (max - min): "
                             'max |ORT - PyTorch| <= atol x range + rtol x max |PyTorch|')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]' (where PyTorch runs the check)")
    parser.add_argument('--allow-partial', action='store_true',
                        help='go on when the checkpoint leaves parts of the model (neck, heads) at their initial values')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help=f'override config entries; {CFG_OPTIONS_RULE}')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config_or_exit(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    from mae_transfer.apis import init_model
    from mae_transfer.export import check_export_options, export_onnx

    check_export_options(args.opset, args.exporter, args.input_size)  # before the model is loaded
    out = args.out or osp.join('work_dirs', 'export', osp.splitext(osp.basename(args.config))[0] + '.onnx')
    check_writable_dir(osp.dirname(osp.abspath(out)), 'folder of --out')
    model = init_model(cfg, args.checkpoint, device=args.device, allow_partial=args.allow_partial)
    report = export_onnx(model, out, opset=args.opset, exporter=args.exporter, input_size=args.input_size,
                         checkpoint=args.checkpoint, rtol=args.rtol, atol=args.atol)
    print(report.table())
    if report.task == 'det':
        print('the graph holds the backbone and feature pyramid; the RPN and RoI heads run in PyTorch '
              '(`--backend onnxruntime` does this)')
    return 0 if report.passed else 1


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer export')
