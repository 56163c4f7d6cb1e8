"""The GPU check's pieces, one job each (the entry is `mae_transfer/tools/gpu_check.py`, standard library only):

- `folder`: makes the wheel folder for the lent GPU machine (here, with PyPI);
- `device_run`: on that machine, after the entry installed the folder: mmcv build, checks, runs, report;
- `mmcv_step`: the mmcv build's time budget and the offline build from the folder's sdist, with the flags of
  `mae_transfer.tools.mmcv_build`, which tools/setup_env.py uses too;
- `measure`: the fresh child processes (one training run, the ops check, the import check).

The MFU arithmetic lives in `mae_transfer.utils.flops`, shared with `benchmark pretrain`.
"""
