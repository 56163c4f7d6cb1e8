"""From measured step memory to a training plan for the GPUs at hand (the arithmetic of `mae-transfer plan`).

The peak memory of one training step grows linearly with the per-device batch: parameters, gradients and
optimizer state are fixed, activations are per sample. Two measurements give the line,

    memory(batch) = fixed + per_sample x batch,

one line without and one with activation checkpointing (`with_cp`). A plan then keeps the recipe's effective
batch (per-device batch x devices x gradient accumulation), so the learning rate the recipe chose for that batch
stays right, and fits the memory with a margin:

- the largest per-device batch that fits without `with_cp`, and the fewest accumulation steps that reach the
  effective batch exactly (checkpointing recomputes the forward pass, about a third more compute, so it is
  used only when batch 1 does not fit without it);
- when no exact split exists (the effective batch does not divide by the devices), the nearest one, with the
  learning rate rescaled linearly to the batch it gives (what `engine.lr_scaling` does at training time);
- when batch 1 does not fit even with `with_cp`, no plan, and what would fit: a smaller input or model, or
  sharding the fixed part (`--strategy fsdp`) when that part alone is the problem.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping

from mmengine.config import Config

MIB_PER_GIB = 1024.0


def parse_memory(text: str) -> float:
    """'24GB', '24G', '24GiB', '16000MB', '80' (GB) -> MiB. GB is read as GiB, as GPU vendors' '24 GB' cards
    report 24 GiB (nvidia-smi's MiB)."""
    match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+)\s*([gGmM]i?[bB]?)?\s*', str(text))
    if not match:
        raise ValueError(f'cannot read the memory {text!r}: write e.g. 24GB or 16000MB')
    value, unit = float(match.group(1)), (match.group(2) or 'G')[0].upper()
    return value * MIB_PER_GIB if unit == 'G' else value


@dataclass
class MemoryFit:
    """memory(batch) = fixed + per_sample x batch, in MiB."""
    fixed_mib: float
    per_sample_mib: float

    @classmethod
    def fit(cls, points: Mapping[int, float]) -> 'MemoryFit':
        """Least squares over {batch: peak MiB} (two or more batch sizes)."""
        if len(points) < 2:
            raise ValueError(f'a line needs two batch sizes; got {sorted(points)}')
        xs, ys = list(map(float, points)), [float(points[b]) for b in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
                 / sum((x - mean_x) ** 2 for x in xs))
        return cls(fixed_mib=mean_y - slope * mean_x, per_sample_mib=slope)

    def predict(self, batch: int) -> float:
        return self.fixed_mib + self.per_sample_mib * batch

    def max_batch(self, capacity_mib: float) -> int:
        """The largest batch whose predicted memory is at most `capacity_mib` (0: not even one sample)."""
        if self.per_sample_mib <= 0:
            return 0 if self.fixed_mib > capacity_mib else 1 << 20
        return max(0, math.floor((capacity_mib - self.fixed_mib) / self.per_sample_mib))


@dataclass
class Recipe:
    """What a config trains with: per-device batch, the devices it was written for, accumulation, the lr and the
    effective batch that lr is for (`auto_scale_lr.base_batch_size`)."""
    per_device_batch: int
    devices: int
    accumulation: int
    lr: float
    base_batch: int
    lr_follows_batch: bool  # auto_scale_lr.enable: the lr is rescaled to the effective batch at training time

    @property
    def effective_batch(self) -> int:
        return self.per_device_batch * self.devices * self.accumulation

    @classmethod
    def from_config(cls, cfg: Config) -> 'Recipe':
        per_device = int(cfg.train_dataloader.batch_size)
        accumulation = int(cfg.optim_wrapper.get('accumulative_counts', 1))
        auto_scale = cfg.get('auto_scale_lr') or {}
        base = int(auto_scale.get('base_batch_size', per_device * accumulation))
        devices = max(1, base // (per_device * accumulation))  # 8xb512 with base 4096 -> 8 devices
        return cls(per_device, devices, accumulation, float(cfg.optim_wrapper.optimizer.lr), base,
                   bool(auto_scale.get('enable', False)))


@dataclass
class Plan:
    """A per-device batch, accumulation and with_cp for `devices` GPUs of `capacity_mib`, or why there is none."""
    recipe: Recipe
    devices: int
    capacity_mib: float
    margin: float
    fits: bool
    per_device_batch: int = 0
    accumulation: int = 0
    with_cp: bool = False
    predicted_mib: float = 0.0
    notes: List[str] = field(default_factory=list)

    @property
    def effective_batch(self) -> int:
        return self.per_device_batch * self.devices * self.accumulation

    @property
    def lr(self) -> float:
        """The lr the run trains with: the recipe's for its effective batch, linearly rescaled when the plan's
        effective batch differs."""
        for_base = self.recipe.lr * (self.recipe.effective_batch / self.recipe.base_batch
                                     if self.recipe.lr_follows_batch else 1.0)
        return for_base * self.effective_batch / self.recipe.effective_batch

    def cfg_options(self, cp_key: str) -> Dict[str, Any]:
        """The config overrides of the plan; `cp_key` is where the model's with_cp lives."""
        if not self.fits:
            return {}
        options: Dict[str, Any] = {'train_dataloader.batch_size': self.per_device_batch,
                                   'optim_wrapper.accumulative_counts': self.accumulation, cp_key: self.with_cp}
        if not self.recipe.lr_follows_batch and self.effective_batch != self.recipe.effective_batch:
            options['optim_wrapper.optimizer.lr'] = self.lr  # nothing rescales it at training time
        return options


def make_plan(recipe: Recipe, fits: Mapping[bool, MemoryFit], devices: int, capacity_mib: float,
              margin: float = 0.1) -> Plan:
    """The plan for `devices` GPUs of `capacity_mib` each (see the module docstring).

    Args:
        recipe: the config's batch and lr (`Recipe.from_config`).
        fits: the memory line without (False) and with (True) activation checkpointing.
        devices: GPUs in the run.
        capacity_mib: memory of one GPU.
        margin: the fraction of the memory left free (allocator fragmentation, CUDA context, varying inputs).
    """
    usable = capacity_mib * (1 - margin)
    target = recipe.effective_batch
    plan = Plan(recipe, devices, capacity_mib, margin, fits=False)
    for with_cp in (False, True):
        fit = fits.get(with_cp)
        largest = fit.max_batch(usable) if fit is not None else 0
        if largest < 1:
            continue
        per_device, accumulation = _split(target, devices, largest)
        plan.fits, plan.with_cp = True, with_cp
        plan.per_device_batch, plan.accumulation = per_device, accumulation
        plan.predicted_mib = fit.predict(per_device)
        if plan.effective_batch != target:
            plan.notes.append(f'the effective batch {target} does not split over {devices} devices: '
                              f'{plan.effective_batch} instead, lr rescaled linearly')
        if with_cp:
            plan.notes.append('batch 1 does not fit without with_cp: activation checkpointing costs about a '
                              'third more compute per step')
        return plan
    at_one = min(fit.predict(1) for fit in fits.values())
    plan.notes.append(f'no fit: batch 1 needs {at_one / MIB_PER_GIB:.1f} GiB with with_cp, '
                      f'{usable / MIB_PER_GIB:.1f} GiB usable ({1 - margin:.0%} of {capacity_mib / MIB_PER_GIB:.1f})')
    fixed = min(fit.fixed_mib for fit in fits.values())
    if fixed > usable:
        plan.notes.append(f'the fixed part alone (parameters, gradients, optimizer state: {fixed / MIB_PER_GIB:.1f} '
                          'GiB) is too large: shard it over the GPUs (tools/train.py --strategy fsdp) or use a '
                          'smaller model')
    else:
        plan.notes.append('use a smaller input (crop or image size) or a smaller model, or GPUs with more memory')
    return plan


def _split(target: int, devices: int, largest: int) -> tuple:
    """(per-device batch, accumulation) with per-device batch <= largest and the product with `devices` equal to
    `target` when possible (fewest accumulation steps), else the nearest product."""
    if target % devices == 0:
        per_device_total = target // devices
        for accumulation in range(math.ceil(per_device_total / largest), per_device_total + 1):
            if per_device_total % accumulation == 0:
                return per_device_total // accumulation, accumulation
    per_device = min(largest, max(1, round(target / devices)))
    return per_device, max(1, round(target / (devices * per_device)))


def describe(plan: Plan, fits: Mapping[bool, MemoryFit], cp_key: str) -> str:
    """The plan as `mae-transfer plan` prints it."""
    gib = MIB_PER_GIB
    recipe = plan.recipe
    lines = [f'recipe: {recipe.per_device_batch} per device x {recipe.devices} devices x {recipe.accumulation} '
             f'accumulation = effective batch {recipe.effective_batch}',
             'memory of one training step (fixed + per sample x batch):']
    for with_cp, fit in sorted(fits.items()):
        lines.append(f'  with_cp {"on " if with_cp else "off"}: {fit.fixed_mib / gib:6.2f} GiB + '
                     f'{fit.per_sample_mib / gib:.3f} GiB x batch')
    lines.append(f'plan for {plan.devices} x {plan.capacity_mib / gib:.1f} GiB (margin {plan.margin:.0%}):')
    if plan.fits:
        lines += [f'  per-device batch {plan.per_device_batch}, accumulative_counts {plan.accumulation}, with_cp '
                  f'{"on" if plan.with_cp else "off"}: effective batch {plan.effective_batch}'
                  f'{" (kept)" if plan.effective_batch == recipe.effective_batch else ""}, lr {plan.lr:.4g}',
                  f'  predicted peak {plan.predicted_mib / gib:.2f} GiB of {plan.capacity_mib / gib:.1f} GiB']
        # configs rarely hold these two yet: `+` adds them (--cfg-options refuses a key the config lacks)
        new = {cp_key, 'optim_wrapper.accumulative_counts'}
        options = ' '.join(f'{"+" * (key in new)}{key}={value}' for key, value in plan.cfg_options(cp_key).items())
        lines.append(f'  --cfg-options {options}')
    lines += [f'  {note}' for note in plan.notes]
    return '\n'.join(lines)


__all__ = ['MIB_PER_GIB', 'MemoryFit', 'Plan', 'Recipe', 'describe', 'make_plan', 'parse_memory']
