"""Write the data the tiny configs read: procedurally generated sets, no download.

    mae-transfer data synthetic det                     # data/synthetic_det/, where the tiny det config reads
    mae-transfer data synthetic pretrain --out ~/imgs   # elsewhere: point a config at it with --cfg-options

Tasks: pretrain (512 images), pool (the demo's 2048 unlabeled images of every task's scenes), det (COCO
instances), seg (ADE20K layout), pose (COCO keypoints), cls (class folders). A set that is already written is
left as it is.
"""
import argparse
from typing import List, Optional

from mae_transfer.datasets.synthetic import SYNTHETIC_SETS, ensure_synthetic, synthetic_data_options


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=['synthetic'], help='what to write (synthetic: generated sets)')
    parser.add_argument('task', choices=list(SYNTHETIC_SETS), help='the task whose set to write')
    parser.add_argument('--out', help='folder to write (default: where the tiny config reads it, e.g. '
                                      'data/synthetic_det)')
    args = parser.parse_args(argv)
    root = ensure_synthetic(args.task, args.out)
    print(f'{root}: the {args.task} synthetic set')
    if args.out is not None and args.task != 'pool':
        options = ' '.join(f'{key}={value}' for key, value in synthetic_data_options(args.task, root).items())
        print(f'point a tiny {args.task} config at it with: --cfg-options {options}')


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer data')
