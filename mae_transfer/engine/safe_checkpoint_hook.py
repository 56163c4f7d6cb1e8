"""Checkpoints that a full disk cannot destroy (tools/train.py puts this hook in place of mmengine's).

Every checkpoint is written atomically (`checkpoint.mmengine_bridge`): a failed write leaves
no torn file. Two things remain wrong with mmengine 0.10.7's CheckpointHook when a save fails (no space left, a
read-only folder):

- it deletes the oldest kept checkpoint (`max_keep_ckpts`) before it writes the new one, so with
  `max_keep_ckpts=1` a failed save leaves no checkpoint at all;
- the error is a bare `OSError` traceback from deep inside the write.

`SafeCheckpointHook` prunes old checkpoints only after the new one is on disk, points `last_checkpoint` at it
atomically, and turns a failure into `CheckpointSaveError`. The error names the path, the reason, the free space
on that filesystem and the previous checkpoint, which is intact. Training stops there: it never goes on without
checkpoints. Storage other than the local filesystem keeps mmengine's behaviour.
"""
import os
import os.path as osp
import shutil
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

from ..checkpoint.files import atomic_write
from ..registry import HOOKS
from .rng_state_hook import RNGStateHook


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written; the message says where, why, the free space and what is intact."""


def _free_space(folder: str) -> str:
    try:
        return f'{shutil.disk_usage(folder).free / 2**20:,.0f} MiB free there'
    except OSError:
        return 'free space unknown'


def describe_failure(path: str, error: OSError, previous: Optional[str]) -> str:
    kept = f'the previous checkpoint {previous} is intact' if previous else 'no earlier checkpoint exists'
    return (f'could not write checkpoint {path}: {error.strerror or error} ({_free_space(osp.dirname(path))}); '
            f'{kept}. Free space or choose another --work-dir, then resume with --resume')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook that saves before it prunes and fails loudly (module docstring). Same
    arguments as `mmengine.hooks.CheckpointHook`."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        filename = self.filename_tmpl.format(step)
        path = osp.join(self.out_dir, filename)
        previous = self.last_ckpt if self.last_ckpt and osp.isfile(self.last_ckpt) else None
        for hook in runner.hooks:  # every rank is here; runner.save_checkpoint below runs on rank 0 only
            if isinstance(hook, RNGStateHook):
                hook.collect_all_ranks()
        try:
            runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                                   save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
                                   meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        except OSError as error:
            raise CheckpointSaveError(describe_failure(path, error, previous)) from error
        self._prune_after_save(runner, step)
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', path)
        if is_main_process():
            atomic_write(path, osp.join(runner.work_dir, 'last_checkpoint'))

    def _prune_after_save(self, runner, step) -> None:
        """mmengine's `max_keep_ckpts` bookkeeping, run once the new checkpoint exists."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            oldest = self.keep_ckpt_ids.popleft()
            path = osp.join(self.out_dir, self.filename_tmpl.format(oldest))
            if is_main_process() and osp.isfile(path):
                os.remove(path)
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))


__all__ = ['CheckpointSaveError', 'SafeCheckpointHook', 'describe_failure']
