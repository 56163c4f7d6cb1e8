#!/usr/bin/env python
"""The README's main job. For now: report and verify the installed stack, then build every shipped config.

The MAE pretraining demo (issue 3) and the downstream demos (issues 5-9) replace this with the whole journey.
"""
import sys
import time

from mae_transfer.utils import collect_env
from mae_transfer.utils.configs import CONFIG_ROOT, build_model, shipped_configs


def main() -> None:
    print('mae_transfer: installed stack')
    for name, version in collect_env.collect_versions().items():
        print(f'  {name:<12} {version}')
    failures = collect_env.verify()
    if failures:
        sys.exit('\n'.join(failures))
    configs = shipped_configs()
    print(f'\nbuilding the {len(configs)} shipped configs under their own default scopes')
    for index, path in enumerate(configs, 1):
        start = time.time()
        model = build_model(path)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f'  [{index}/{len(configs)}] {path.relative_to(CONFIG_ROOT)}: {type(model).__name__}, '
              f'{params:.2f} M parameters, built in {time.time() - start:.1f} s')


if __name__ == '__main__':
    main()
