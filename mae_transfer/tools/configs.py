"""List the shipped configs: task, model size, the data each expects and whether it is there.

    mae-transfer configs            # every config
    mae-transfer configs det        # one task: pretrain, det, seg, pose, cls (or smoke)

Each config is named by its path relative to configs/, which every command accepts, from a checkout and from an
installed wheel alike. The tiny twins read synthetic sets that `mae-transfer data synthetic TASK` writes.
"""
import argparse
from pathlib import Path
from typing import List, Optional, Tuple

from mmengine.config import Config

from mae_transfer.utils.configs import CONFIG_ROOT, shipped_configs

TASK_FOLDERS = ('pretrain', 'det', 'seg', 'pose', 'cls', 'smoke')


def describe(path: Path) -> Tuple[str, str, str, str]:
    """(name relative to configs/, task folder, ViT size, the training data root) of one shipped config."""
    cfg = Config.fromfile(str(path))
    model = cfg.get('model') or {}
    arch = (model.get('backbone') or model).get('arch', 'base')
    loader = cfg.get('train_dataloader') or cfg.get('test_dataloader') or {}
    data_root = str((loader.get('dataset') or {}).get('data_root') or '-')
    return str(path.relative_to(CONFIG_ROOT)), path.parent.name, str(arch), data_root


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('task', nargs='?', choices=TASK_FOLDERS, help='only the configs of this task')
    args = parser.parse_args(argv)
    rows = [describe(path) for path in shipped_configs()
            if args.task is None or path.parent.name == args.task]
    width = max(len(row[0]) for row in rows)
    print(f'{"config (relative to configs/)".ljust(width)}  task      size   data (training set)')
    for name, task, arch, data_root in rows:
        synthetic = 'synthetic' in data_root
        there = '' if data_root == '-' else (' (there)' if Path(data_root).exists() else
                                             f' (missing: mae-transfer data synthetic {task})' if synthetic
                                             else ' (missing)')
        print(f'{name.ljust(width)}  {task.ljust(8)}  {arch.ljust(5)}  {data_root}{there}')
    print(f'\n{len(rows)} configs under {CONFIG_ROOT}; relative paths are found from any folder. The synthetic sets '
          'are written under the current folder.')


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer configs')
