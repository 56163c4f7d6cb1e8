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
  sharding the fixed part (`--strategy fsdp`) when that part alone is the problem;
- a model with BatchNorm in training mode needs 2 samples per device (`min_batch`);
- with k times the recipe's accumulation, one optimizer update takes k iterations: every iteration-based
  quantity (max_iters, val and checkpoint intervals, logging, schedulers with by_epoch=False) is multiplied by
  k, so the run makes the recipe's updates on the recipe's schedule (`rescale_iterations`). Epochs stay epochs.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

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
    points: Dict[int, float] = field(default_factory=dict)  # the measurements {batch: MiB} the line was fitted to

    @property
    def spread_mib(self) -> Optional[float]:
        """The residual standard deviation of the measurements about the line, sqrt(sum r^2 / (n - 2)); None with
        two points (a line through two points has no residual, however noisy they were)."""
        if len(self.points) < 3:
            return None
        residuals = [mib - self.predict(batch) for batch, mib in self.points.items()]
        return math.sqrt(sum(r * r for r in residuals) / (len(residuals) - 2))

    @property
    def spread_pct(self) -> Optional[float]:
        """`spread_mib` as a percentage of the mean measured memory."""
        spread = self.spread_mib
        return None if spread is None else 100 * spread / (sum(self.points.values()) / len(self.points))

    def describe_spread(self) -> str:
        spread = self.spread_mib
        if spread is None:
            return 'two batch sizes: the line has no residual to show its noise (measure three, e.g. --batches 2 4 8)'
        return f'residual spread {spread:.1f} MiB ({self.spread_pct:.1f} % of the mean) over {len(self.points)} batches'

    @classmethod
    def fit(cls, points: Mapping[int, float]) -> 'MemoryFit':
        """Least squares over {batch: peak MiB} (two or more batch sizes)."""
        if len(points) < 2:
            raise ValueError(f'a line needs two batch sizes; got {sorted(points)}')
        xs, ys = list(map(float, points)), [float(points[b]) for b in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
                 / sum((x - mean_x) ** 2 for x in xs))
        return cls(fixed_mib=mean_y - slope * mean_x, per_sample_mib=slope,
                   points={int(b): float(points[b]) for b in points})

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
    schedule: Dict[str, Any] = field(default_factory=dict)  # rescaled iteration-based entries (dotted keys)

    @property
    def iterations_per_update(self) -> float:
        """How many times more iterations one optimizer update takes than in the recipe."""
        return self.accumulation / self.recipe.accumulation

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
        options.update(self.schedule)
        return options


def make_plan(recipe: Recipe, fits: Mapping[bool, MemoryFit], devices: int, capacity_mib: float,
              margin: float = 0.1, min_batch: int = 1, cfg: Optional[Config] = None) -> Plan:
    """The plan for `devices` GPUs of `capacity_mib` each (see the module docstring).

    Args:
        recipe: the config's batch and lr (`Recipe.from_config`).
        fits: the memory line without (False) and with (True) activation checkpointing.
        devices: GPUs in the run.
        capacity_mib: memory of one GPU.
        margin: the fraction of the memory left free (allocator fragmentation, CUDA context, varying inputs).
        min_batch: the smallest per-device batch the model trains with (2 with BatchNorm in training mode).
        cfg: the recipe's config; when given, its iteration-based schedule is rescaled to the plan's accumulation.
    """
    usable = capacity_mib * (1 - margin)
    target = recipe.effective_batch
    plan = Plan(recipe, devices, capacity_mib, margin, fits=False)
    for with_cp in (False, True):
        fit = fits.get(with_cp)
        largest = fit.max_batch(usable) if fit is not None else 0
        if largest < min_batch:
            continue
        per_device, accumulation = _split(target, devices, largest, min_batch)
        plan.fits, plan.with_cp = True, with_cp
        plan.per_device_batch, plan.accumulation = per_device, accumulation
        plan.predicted_mib = fit.predict(per_device)
        if plan.effective_batch != target:
            plan.notes.append(f'the effective batch {target} does not split over {devices} devices: '
                              f'{plan.effective_batch} instead, lr rescaled linearly')
        if with_cp:
            plan.notes.append(f'batch {min_batch} does not fit without with_cp: activation checkpointing costs '
                              'about a third more compute per step')
        if cfg is not None:
            plan.schedule = rescale_iterations(cfg, plan.iterations_per_update)
            if plan.schedule:
                plan.notes.append(f'{plan.accumulation} accumulation steps instead of {recipe.accumulation}: '
                                  f'iteration-based entries x{plan.iterations_per_update:g}, so the optimizer '
                                  'makes the recipe\'s updates on its schedule')
        return plan
    at_one = min(fit.predict(min_batch) for fit in fits.values())
    plan.notes.append(f'no fit: batch {min_batch} needs {at_one / MIB_PER_GIB:.1f} GiB with with_cp, '
                      f'{usable / MIB_PER_GIB:.1f} GiB usable ({1 - margin:.0%} of {capacity_mib / MIB_PER_GIB:.1f})')
    fixed = min(fit.fixed_mib for fit in fits.values())
    if fixed > usable:
        plan.notes.append(f'the fixed part alone (parameters, gradients, optimizer state: {fixed / MIB_PER_GIB:.1f} '
                          'GiB) is too large: shard it over the GPUs (tools/train.py --strategy fsdp) or use a '
                          'smaller model')
    else:
        plan.notes.append('use a smaller input (crop or image size) or a smaller model, or GPUs with more memory')
    return plan


def _split(target: int, devices: int, largest: int, min_batch: int = 1) -> tuple:
    """(per-device batch, accumulation) with min_batch <= per-device batch <= largest and the product with
    `devices` equal to `target` when possible (fewest accumulation steps), else the nearest product."""
    if target % devices == 0:
        per_device_total = target // devices
        for accumulation in range(math.ceil(per_device_total / largest), per_device_total + 1):
            if per_device_total % accumulation == 0 and per_device_total // accumulation >= min_batch:
                return per_device_total // accumulation, accumulation
    per_device = min(largest, max(min_batch, round(target / devices)))
    return per_device, max(1, round(target / (devices * per_device)))


def rescale_iterations(cfg: Config, factor: float) -> Dict[str, Any]:
    """The config entries counted in iterations, multiplied by `factor` (iterations per optimizer update relative
    to the recipe), as dotted `--cfg-options` keys (list items by index: `param_scheduler.0.end`).

    mmengine counts iterations, not updates: a scheduler with by_epoch=False steps once per iteration, and an
    IterBasedTrainLoop ends after max_iters iterations, whatever `accumulative_counts` is. So with accumulation
    2 instead of 1 the recipe's 200 updates need 400 iterations and a 500-iteration warm-up needs 1000. Rescaled:
    `train_cfg.max_iters`, `val_interval` and `dynamic_intervals` of an iteration-based loop; `begin`, `end`,
    `milestones`, `T_max` (and `total_steps`) of every scheduler with by_epoch=False, also inside an
    epoch-based recipe (pose's warm-up); the checkpoint interval when by_epoch=False; the logger interval
    (LoggerHook always counts iterations). Epochs stay epochs: an epoch-based loop, its validation and
    checkpoint intervals and its by_epoch schedulers (also with convert_to_iter_based, which mmengine converts
    with the run's own epoch length) are left alone. Boundaries stay whole; one above 0 stays >= 1.
    """
    if factor == 1:
        return {}

    def point(value):
        if isinstance(value, (list, tuple)):
            return type(value)(point(v) for v in value)
        return value if not isinstance(value, (int, float)) or value == 0 else max(1, round(value * factor))

    options: Dict[str, Any] = {}
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg:
        for key in ('max_iters', 'val_interval', 'dynamic_intervals'):
            if train_cfg.get(key) is not None:
                options[f'train_cfg.{key}'] = point(train_cfg[key])
    schedulers = cfg.get('param_scheduler') or []
    for index, scheduler in enumerate([schedulers] if isinstance(schedulers, dict) else schedulers):
        if scheduler.get('by_epoch', True):  # mmengine's default: epochs
            continue
        prefix = 'param_scheduler' if isinstance(schedulers, dict) else f'param_scheduler.{index}'
        for key in ('begin', 'end', 'milestones', 'T_max', 'total_steps'):
            if scheduler.get(key) is not None:
                options[f'{prefix}.{key}'] = point(list(scheduler[key]) if key == 'milestones' else scheduler[key])
    hooks = cfg.get('default_hooks') or {}
    checkpoint, logger = hooks.get('checkpoint') or {}, hooks.get('logger') or {}
    if checkpoint.get('interval', -1) > 0 and not checkpoint.get('by_epoch', True):
        options['default_hooks.checkpoint.interval'] = point(checkpoint['interval'])
    if logger.get('interval', -1) > 0:
        options['default_hooks.logger.interval'] = point(logger['interval'])
    return options


def _cli_option(key: str, value: Any) -> str:
    """`key=value` as one shell word: lists without spaces, quoted when they hold brackets."""
    if isinstance(value, (list, tuple)):
        return f"'{key}={str(value).replace(' ', '')}'"
    return f'{key}={value}'


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
        options = ' '.join(_cli_option(f'{"+" * (key in new)}{key}', value)
                           for key, value in plan.cfg_options(cp_key).items())
        lines.append(f'  --cfg-options {options}')
    lines += [f'  {note}' for note in plan.notes]
    return '\n'.join(lines)


__all__ = ['MIB_PER_GIB', 'MemoryFit', 'Plan', 'Recipe', 'describe', 'make_plan', 'parse_memory',
           'rescale_iterations']
