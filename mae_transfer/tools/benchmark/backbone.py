"""Transfer backbone benchmark: forward + backward of `MAEViT` (fp32, drop path 0.1 as in the recipes) in the
downstream settings, each with and without activation checkpointing (`with_cp`):
vitdet-global (1024 px, batch 1, global attention in every block, rel-pos), vitdet-window (1024 px, batch 1,
window 14 + global blocks 2, 5, 8, 11 for ViT-B, rel-pos) and upernet (512 px, batch 2, out_indices 3, 5, 7, 11,
global, cls token, no rel-pos); on request vitdet-global-abs (as vitdet-global without rel-pos).

    mae-transfer benchmark backbone                       # ViT-B, the three settings, with_cp off and on
    mae-transfer benchmark backbone --settings vitdet-window --cp off
    mae-transfer benchmark backbone --arch tiny --img-size 64 --batch 1 --global-attn-indexes 1 --out-indices 1 3

Each measurement runs in a fresh process so that its peak memory is its own (CPU: peak RSS; GPU: peak
allocated). Numbers are printed, never asserted: machines are shared and noisy.
"""
import argparse
import json
import os
from typing import List, Optional

import torch

from mae_transfer.tools.benchmark.pretrain import add_shared_arguments
from mae_transfer.tools.benchmark.references import REFERENCES, ReferenceUnavailable
from mae_transfer.utils.benchmarking import (default_device, load_line, median, peak_memory_mib, print_profile,
                                             run_in_fresh_process, time_training_steps)

BACKBONE_SETTINGS = {
    # img_size and batch of each setting; the attention layout follows the recipes (ViTDet / mmseg MAE)
    'vitdet-global': dict(img_size=1024, batch=1, window_size=0, use_rel_pos=True, pyramid=False),
    'vitdet-window': dict(img_size=1024, batch=1, window_size=14, use_rel_pos=True, pyramid=False),
    'upernet': dict(img_size=512, batch=2, window_size=0, use_rel_pos=False, pyramid=True, layer_scale=1.0),
    # not run by default: all-global ViTDet without rel-pos, to see what the rel-pos bias costs
    'vitdet-global-abs': dict(img_size=1024, batch=1, window_size=0, use_rel_pos=False, pyramid=False),
}
DEFAULT_BACKBONE_SETTINGS = ['vitdet-global', 'vitdet-window', 'upernet']


def vitdet_global_blocks(depth: int) -> List[int]:
    """ViTDet's global blocks: the last of each quarter (B: 2, 5, 8, 11; L: 5, 11, 17, 23; H: 7, 15, 23, 31)."""
    return [(k + 1) * depth // 4 - 1 for k in range(4)]


def backbone_spec(setting: str, with_cp: bool, args: argparse.Namespace) -> dict:
    """The MAEViT options and input of one measurement, from the setting and the command-line overrides."""
    from mae_transfer.models import get_arch
    base = BACKBONE_SETTINGS[setting]
    depth = get_arch(args.arch).depth
    img_size = args.img_size or base['img_size']
    global_blocks = args.global_attn_indexes if args.global_attn_indexes is not None else vitdet_global_blocks(depth)
    options = dict(arch=args.arch, img_size=224, drop_path_rate=args.drop_path, with_cp=with_cp,
                   window_size=args.window_size if base['window_size'] else 0, use_rel_pos=base['use_rel_pos'],
                   out_indices=list(args.out_indices) if base['pyramid'] else [-1], rel_pos_impl=args.rel_pos_impl,
                   layer_scale_init_value=base.get('layer_scale'))  # the seg recipe's (and mmseg's) layer scale
    if options['window_size']:
        options['global_attn_indexes'] = list(global_blocks)
    if options['use_rel_pos']:
        options['rel_pos_img_size'] = img_size  # ViTDet sizes the global tables for the fine-tuning input
    return dict(setting=setting, batch=args.batch or base['batch'], img_size=img_size, options=options,
                implementation='ours')


def reference_spec(spec: dict, reference: str, args: argparse.Namespace) -> dict:
    """The reference measurement of the same setting, input and step as `spec` (ours, with_cp off)."""
    options = spec['options']
    return dict(spec, implementation=reference, options=dict(
        arch=options['arch'], drop_path_rate=options['drop_path_rate'], with_cp=False,
        out_indices=options['out_indices'], window_size=options['window_size'],
        global_attn_indexes=options.get('global_attn_indexes', []), use_rel_pos=options['use_rel_pos'],
        detectron2_root=args.detectron2_root))


def reference_settings(reference: str) -> List[str]:
    """The settings a reference implements: mmseg's MAE the UperNet one, detectron2's ViT the ViTDet ones."""
    return ['upernet'] if reference == 'mmseg' else ['vitdet-global', 'vitdet-window', 'vitdet-global-abs']


def build_backbone(spec: dict) -> torch.nn.Module:
    """The model of a measurement: our MAEViT or a reference (`references.py`)."""
    from mae_transfer.tools.benchmark import references
    options = spec['options']
    if spec['implementation'] == 'mmseg':
        return references.build_mmseg_mae(options['arch'], spec['img_size'], options['out_indices'],
                                          options['drop_path_rate'])
    if spec['implementation'] == 'detectron2':
        return references.build_detectron2_vit(options['detectron2_root'], options['arch'], spec['img_size'],
                                               options['window_size'], options['global_attn_indexes'],
                                               options['drop_path_rate'], options['use_rel_pos'])
    from mae_transfer.models import MAEViT
    return MAEViT(**options)


def measure_backbone(spec: dict, iters: int, warmup: int, threads: int, profile: bool) -> dict:
    """Forward + backward of MAEViT (or a reference) on random images; times are medians, memory the process peak."""
    from mae_transfer.tools.benchmark.references import reference_outputs
    if threads:
        torch.set_num_threads(threads)
    device = default_device()
    torch.manual_seed(0)
    model = build_backbone(spec).to(device)
    model.train()  # not chained: mmseg's BEiT / MAE `train` returns None
    imgs = torch.randn(spec['batch'], 3, spec['img_size'], spec['img_size'], device=device)

    def steps(count: int) -> dict:
        def loss() -> torch.Tensor:
            return sum(out.float().square().mean() for out in reference_outputs(model(imgs)))
        return time_training_steps(model, loss, count, device=device)

    before_step_mem = steps(warmup)['before_step_mem_mib']
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    if profile:
        print_profile(lambda: steps(1), device)
    cost = steps(iters)
    # the median step by its total time, split into its forward and backward parts
    fwd, total = sorted(zip(cost['forward_s'], cost['step_s']), key=lambda pair: pair[1])[iters // 2]
    return dict(spec, device=device, threads=torch.get_num_threads(), fwd_s=fwd, bwd_s=total - fwd, step_s=total,
                peak_mem_mib=peak_memory_mib(device), before_step_mem_mib=before_step_mem,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6)


def main(argv: Optional[List[str]] = None) -> None:
    from mae_transfer.tools.benchmark import child_command
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_arguments(parser, 'images per step (per setting: 1, 1, 2)', 'input side (per setting)',
                         'measured steps (1)', 'unmeasured steps first (0)')
    parser.add_argument('--settings', nargs='+', choices=list(BACKBONE_SETTINGS), default=DEFAULT_BACKBONE_SETTINGS)
    parser.add_argument('--cp', nargs='+', choices=['off', 'on'], default=['off', 'on'],
                        help='activation checkpointing (with_cp) off and/or on')
    parser.add_argument('--window-size', type=int, default=14)
    parser.add_argument('--global-attn-indexes', type=int, nargs='*', default=None,
                        help="vitdet-window's global blocks (default: the last block of each quarter)")
    parser.add_argument('--out-indices', type=int, nargs='+', default=[3, 5, 7, 11], help="upernet's outputs")
    parser.add_argument('--drop-path', type=float, default=0.1)
    parser.add_argument('--rel-pos-impl', choices=['fold', 'mask'], default='fold')
    parser.add_argument('--reference', nargs='*', choices=list(REFERENCES), default=['mmseg'],
                        help='reference implementations measured in the same run, with_cp off (mmseg: upernet; '
                        'detectron2: the vitdet settings, needs --detectron2-root); none with an empty list')
    parser.add_argument('--detectron2-root', default=None, help='a detectron2 source checkout (not built)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='measure every (ours, reference) pair this many times, interleaved')
    parser.add_argument('--list', action='store_true', help='print the measurements as JSON, run nothing')
    parser.add_argument('--single', default=None, help=argparse.SUPPRESS)  # the fresh child process: its spec
    args = parser.parse_args(argv)
    iters, warmup = args.iters or 1, 0 if args.warmup is None else args.warmup

    if args.single is not None:
        try:
            result = measure_backbone(json.loads(args.single), iters, warmup, args.threads, args.profile)
        except ReferenceUnavailable as error:
            result = dict(unavailable=str(error))
        print(json.dumps(result))
        return
    specs = measurement_specs(args)
    if args.list:
        for spec in specs:
            print(json.dumps(spec))
        return
    print(f'forward + backward, {args.arch}, fp32, drop path {args.drop_path}; median of {iters} steps after '
          f'{warmup} warm-up; peak = peak RSS of a fresh process (GPU: peak allocated); {load_line("start")}')
    print(f'{"setting":>14} {"batch":>5} {"px":>5} {"cp":>3} {"fwd s":>7} {"bwd s":>7} {"total s":>8} '
          f'{"peak GB":>8} {"before GB":>9}  device  implementation')
    results, unavailable = [], set()
    for spec in specs:  # one fresh process per measurement, so that each peak RSS is its own
        if spec['implementation'] in unavailable:
            continue
        command = [*child_command('backbone'), '--single', json.dumps(spec), '--iters', str(iters),
                   '--warmup', str(warmup), '--threads', str(args.threads)]
        r = run_in_fresh_process(command + (['--profile'] if args.profile else []), show_stderr=True)
        if 'unavailable' in r:
            print(f'reference {spec["implementation"]} unavailable, ours only: {r["unavailable"]}', flush=True)
            unavailable.add(spec['implementation'])
            continue
        results.append(r)
        print(f'{r["setting"]:>14} {r["batch"]:>5} {r["img_size"]:>5} {"on" if r["options"]["with_cp"] else "off":>3} '
              f'{r["fwd_s"]:>7.2f} {r["bwd_s"]:>7.2f} {r["step_s"]:>8.2f} {r["peak_mem_mib"] / 1024:>8.2f} '
              f'{r["before_step_mem_mib"] / 1024:>9.2f}  {r["device"]} ({r["threads"]} threads)  '
              f'{r["implementation"]}', flush=True)
    print_reference_ratios(results)
    print(f'load average at the end: {os.getloadavg()[0]:.1f}')


def measurement_specs(args: argparse.Namespace) -> List[dict]:
    """Every measurement in order: per round, per setting, ours with_cp off / on, each reference right after ours
    with_cp off (interleaved, so that a change of the machine's load hits both sides alike)."""
    references = list(args.reference or [])
    if 'detectron2' in references and not args.detectron2_root:
        print('reference detectron2 unavailable, ours only: give --detectron2-root (a source checkout)')
        references.remove('detectron2')
    specs = []
    for _ in range(max(1, args.rounds)):
        for setting in args.settings:
            for cp in args.cp:
                ours = backbone_spec(setting, cp == 'on', args)
                specs.append(ours)
                if cp == 'off':
                    specs += [reference_spec(ours, reference, args) for reference in references
                              if setting in reference_settings(reference)]
    return specs


def print_reference_ratios(results: List[dict]) -> None:
    """ours / reference per setting and round (with_cp off): step time, peak memory and step memory (peak minus
    the memory before the first step: what the step itself adds); medians and ranges over the rounds."""
    ours = [r for r in results if r['implementation'] == 'ours' and not r['options']['with_cp']]
    for reference in REFERENCES:
        for setting in dict.fromkeys(r['setting'] for r in results if r['implementation'] == reference):
            pairs = list(zip([r for r in ours if r['setting'] == setting],
                             [r for r in results if r['implementation'] == reference and r['setting'] == setting]))
            ratios = dict(time=[a['step_s'] / b['step_s'] for a, b in pairs],
                          peak=[a['peak_mem_mib'] / b['peak_mem_mib'] for a, b in pairs],
                          step_mem=[step_memory(a) / max(step_memory(b), 1e-9) for a, b in pairs])
            print(f'ours / {reference} ({setting}, {len(pairs)} round(s), median [min, max]): ' + ', '.join(
                f'{name} {median(values):.2f}x [{min(values):.2f}, {max(values):.2f}]'
                for name, values in ratios.items()))


def step_memory(result: dict) -> float:
    """MiB the training step adds to what building the model and its input took."""
    return result['peak_mem_mib'] - result['before_step_mem_mib']
