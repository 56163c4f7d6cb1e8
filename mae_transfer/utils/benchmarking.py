"""The harness of every benchmark (`mae-transfer benchmark TASK`, mae_transfer/tools/benchmark/): printed
numbers, never assertions.

Two measurements recur in every task:

- a learning check of a tiny config (`learning_check`): evaluate the model as initialised, train it (timed:
  wall and CPU seconds per iteration), evaluate again; `print_before_after` prints the two rows (det, seg,
  pose, cls);
- the cost of a model (`build_random_model`, `time_training_steps`): training forward + backward passes (and
  an optimizer step where one is given) and the peak memory, measured in a fresh interpreter
  (`run_in_fresh_process`) so that the peak RSS is this model's alone (every task, pretrain and backbone
  included); `print_profile` shows where one step's time goes.

`add_common_arguments`, `child_arguments` and `run_task_benchmark` are the command line of the config-based
tasks (det, seg, pose, cls) around them.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config


def peak_memory_mib(device: str) -> float:
    """The process's peak memory so far in MiB: peak RSS on CPU, peak allocated tensor memory on a GPU.

    The RSS peak never goes down, so only a fresh process measures one model (see `run_in_fresh_process`).
    """
    if device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def default_device() -> str:
    """'cuda' where a GPU is visible, else 'cpu'."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def median(values: Sequence[float]) -> float:
    """The middle value (the upper one of an even count), as every benchmark reports times."""
    return sorted(values)[len(values) // 2]


def build_random_model(config: Union[str, Config], device: str = 'cpu') -> Tuple[Config, torch.nn.Module]:
    """A config's model with random weights (the cost does not depend on them and no checkpoint is needed),
    seeded, in training mode on `device`; returns (the Config, the model).

    `config` is a file, a shipped config's name relative to configs/, or a Config (changed in place: its
    pretrained init is dropped).
    """
    from mae_transfer.utils.configs import build_model, load_config

    cfg = config if isinstance(config, Config) else load_config(config)
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None
    cfg.model.pop('init_cfg', None)  # the MAE pretrainer has no backbone: its own init_cfg
    torch.manual_seed(0)
    return cfg, build_model(cfg).to(device).train()


def parameter_counts(model: torch.nn.Module) -> Dict[str, float]:
    """Millions of parameters: params_m (all), trainable_m (requires_grad) and backbone_params_m."""
    return dict(params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                trainable_m=sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
                backbone_params_m=sum(p.numel() for p in model.backbone.parameters()) / 1e6)


def time_training_steps(model: torch.nn.Module, compute_loss: Callable[[], torch.Tensor], steps: int,
                        amp: bool = False, device: str = 'cpu', optimizer: Optional[torch.optim.Optimizer] = None,
                        dtype: Optional[torch.dtype] = None) -> Dict[str, object]:
    """Time `steps` training steps; returns dict(step_s, forward_s, peak_mem_mib, before_step_mem_mib).

    Args:
        model: the model in training mode; its gradients are dropped after each step.
        compute_loss: runs one forward pass on fixed inputs and returns the scalar loss.
        steps: steps to time; `step_s` holds one time per step and `forward_s` the forward part of it (the first
            includes any warm-up cost: callers that want a steady-state number drop it or take the median).
        amp: run `compute_loss` under bf16 autocast (the backward pass follows autocast's dtypes).
        device: 'cpu' or 'cuda', where the model and its inputs are.
        optimizer: stepped after each backward pass (timed with it); forward + backward only when None.
        dtype: the autocast dtype (e.g. torch.float16), instead of `amp`'s bf16.
    """
    cast = dtype if dtype is not None else (torch.bfloat16 if amp else None)

    def sync() -> None:
        if device == 'cuda':
            torch.cuda.synchronize()  # CUDA runs asynchronously: wait for the queued kernels

    before = peak_memory_mib(device)  # what building the model and its inputs cost
    times, forward_times = [], []
    for _ in range(steps):
        sync()  # kernels still queued from before must not count
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=cast or torch.bfloat16, enabled=cast is not None):
            loss = compute_loss()
        sync()
        forward_times.append(time.perf_counter() - start)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        sync()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return dict(step_s=times, forward_s=forward_times, peak_mem_mib=peak_memory_mib(device),
                before_step_mem_mib=before)


def print_profile(step: Callable[[], Any], device: str = 'cpu', row_limit: int = 25) -> None:
    """Run `step` once under the torch profiler and print its top ops by self CPU time to stderr."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
    with profile(activities=activities) as prof:
        step()
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=row_limit), file=sys.stderr)


class FreshProcessError(RuntimeError):
    """A measurement's child process failed or printed no JSON; `stderr` holds what it wrote there."""

    def __init__(self, message: str, stderr: str):
        super().__init__(message)
        self.stderr = stderr


def run_in_fresh_process(argv: Sequence[str], cwd: Optional[str] = None, show_stderr: bool = False) -> dict:
    """Run `python ARGV...` in a new interpreter and return the JSON object on the last line of its stdout.

    A fresh process so that the peak RSS is the measurement's own: the parent has imported and built other
    things, and a process's peak RSS never goes down.

    Args:
        argv: the script and its arguments (or `-m`, a module and its arguments).
        cwd: the child's working directory; the parent's by default.
        show_stderr: copy the child's stderr (warnings, profiles) to ours once it has finished; it is hidden
            otherwise, unless the child fails.

    Raises:
        FreshProcessError: the child exited with an error or its last line is not JSON; the message ends with
            the tail of the child's stderr.
    """
    command = [sys.executable, *map(str, argv)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if show_stderr and out.returncode == 0:
        sys.stderr.write(out.stderr)
    lines = out.stdout.strip().splitlines()
    if out.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    problem = f'exited with status {out.returncode}' if out.returncode else 'printed no JSON on its last line'
    raise FreshProcessError(f'{" ".join(command)} {problem}; its stderr ends with:\n{out.stderr[-2000:]}',
                            out.stderr)


def learning_check(cfg: Config, metrics: Mapping[str, str], iters: Optional[int] = None,
                   pretrained: Optional[str] = None, seed: int = 0, work_dir: Optional[str] = None,
                   work_dir_prefix: str = 'benchmark_') -> dict:
    """Evaluate the model as initialised, train it (timed), evaluate again; returns metrics and timings.

    The caller has pointed the config at its data. "Before" is exactly the weights training starts from
    (`init_weights` runs once: `train()` does not initialise again), so a pretrained backbone counts as
    untrained for the task. No validation runs inside the timed training: its cost is not the training's.

    Args:
        cfg: the Config of a tiny, iteration-based recipe; changed in place (schedule scaled to `iters`, seed,
            work_dir, no validation loop).
        metrics: short name -> key of the metric in `Runner.test()`'s result, e.g. {'mIoU': 'mIoU'}.
        iters: training iterations; the config's by default.
        pretrained: backbone checkpoint (any supported format); random initialisation when left out.
        seed: randomness seed of the run.
        work_dir: logs and checkpoints; a new temporary folder (named with `work_dir_prefix`) by default.

    Returns:
        dict(before, after (short name -> float), iters, batch, train_s, s_per_iter, cpu_s_per_iter (of this
        process: data workers excluded), threads, work_dir).
    """
    from mmengine.runner import Runner

    import mae_transfer  # noqa: F401  (registries, checkpoint allowlist)
    from mae_transfer.utils.configs import set_pretrained
    from mae_transfer.utils.schedule import set_schedule_length

    set_pretrained(cfg, pretrained)
    iters = iters or cfg.train_cfg.max_iters
    set_schedule_length(cfg, iters=iters)  # warmup and lr steps move with a shorter or longer run
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # evaluate outside the timed training
    cfg.default_hooks.checkpoint.interval = iters
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = str(work_dir or tempfile.mkdtemp(prefix=work_dir_prefix))

    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()
    before = runner.test()
    wall, cpu = time.perf_counter(), time.process_time()
    runner.train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = runner.test()
    return dict(before={name: float(before[key]) for name, key in metrics.items()},
                after={name: float(after[key]) for name, key in metrics.items()}, iters=iters,
                batch=cfg.train_dataloader.batch_size, train_s=wall, s_per_iter=wall / iters,
                cpu_s_per_iter=cpu / iters, threads=torch.get_num_threads(), work_dir=cfg.work_dir)


def print_before_after(result: dict, width: int, digits: int, total: bool = False) -> None:
    """Print a `learning_check` result (plus its 'config' and 'pretrained'): the metrics before and after.

    Args:
        result: `learning_check`'s dict with 'config' and 'pretrained' added.
        width: column width of each metric.
        digits: decimals of each metric.
        total: also print the whole training time in seconds.
    """
    keys = list(result['before'])
    print(f'tiny twin {result["config"]} (pretrained: {result["pretrained"]}), {result["iters"]} iterations of '
          f'batch {result["batch"]}, {result["threads"]} torch threads')
    print(f'{"":>10} ' + ' '.join(f'{key:>{width}}' for key in keys))
    for name in ('before', 'after'):
        print(f'{name:>10} ' + ' '.join(f'{result[name][key]:>{width}.{digits}f}' for key in keys))
    print('training: ' + (f'{result["train_s"]:.0f} s, ' if total else '')
          + f'{result["s_per_iter"]:.3f} s/iter wall, {result["cpu_s_per_iter"]:.3f} s/iter CPU of the '
          f'main process; logs in {result["work_dir"]}')


def print_step_cost(result: dict, size: Sequence[int]) -> None:
    """Print a full-size measurement: parameters, then the time of each step and the peak memory.

    Args:
        result: dict with config, params_m, backbone_params_m, batch, amp, device, threads and
            `time_training_steps`'s keys.
        size: input height and width.
    """
    print(f'{result["config"]}: {result["params_m"]:.1f} M parameters ({result["backbone_params_m"]:.1f} M backbone)')
    print(f'one training forward + backward, batch {result["batch"]}, {size[0]}x{size[1]}, '
          f'{"bf16 autocast" if result["amp"] else "fp32"}, {result["device"]} ({result["threads"]} threads): '
          + ', '.join(f'{t:.1f} s' for t in result['step_s'])
          + f'; peak {result["peak_mem_mib"] / 1024:.2f} GB '
          f'(after building: {result["before_step_mem_mib"] / 1024:.2f} GB)')


def add_common_arguments(parser: argparse.ArgumentParser, batch: int, steps: int = 1,
                         modes: Sequence[str] = ('tiny', 'full'), data_root: Optional[str] = None,
                         work_dir: Optional[str] = None) -> None:
    """The options of a task benchmark's `tiny` (learning check) and `full` (step cost) modes.

    `--single` is the hidden flag of the fresh child process that takes the full-size measurement
    (`child_arguments` writes its command line).

    Args:
        parser: the command's parser.
        batch: default images per full-size step.
        steps: default full-size steps to time.
        modes: choices of the positional `mode` ('all': tiny, then full).
        data_root: default synthetic set of the tiny mode (None: the task's, `ensure_synthetic`).
        work_dir: default work dir of the tiny mode (None: a temporary folder).
    """
    parser.add_argument('mode', choices=list(modes))
    parser.add_argument('--config', default=None, help='tiny: the tiny config; full: the ViT-B recipe (a file or '
                        'a shipped config relative to configs/)')
    parser.add_argument('--configs', nargs='+', default=None,
                        help='full: several configs, each measured in its own fresh process')
    parser.add_argument('--data-root', default=data_root, help='tiny: synthetic set (written if missing)')
    parser.add_argument('--work-dir', default=work_dir)
    parser.add_argument('--iters', type=int, default=None, help="tiny: training iterations (the config's)")
    parser.add_argument('--pretrained', default=None, help='tiny: backbone checkpoint (default: random)')
    parser.add_argument('--batch', type=int, default=batch, help='full: images per step')
    parser.add_argument('--steps', type=int, default=steps, help='full: forward + backward passes to time')
    parser.add_argument('--amp', action='store_true', help='full: bf16 autocast')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (default: torch decides)')
    parser.add_argument('--single', action='store_true', help=argparse.SUPPRESS)  # the fresh child process


def child_arguments(script: Union[str, Sequence[str]], args: argparse.Namespace, config: str,
                    extra: Optional[Mapping[str, Any]] = None) -> List[str]:
    """The `full --single` command line of the child process, with the parent's full-mode options.

    Args:
        script: the script the child runs, or the start of its command line (`['-m', module, task]`).
        args: the parent's parsed options.
        config: the config the child measures.
        extra: a task's own full-mode options (name -> value, written as `--name value`; None is left out).
    """
    prefix = [script] if isinstance(script, str) else list(script)
    options = [item for name, value in (extra or {}).items() if value is not None
               for item in (f'--{name.replace("_", "-")}', str(value))]
    return prefix + ['full', '--single', '--config', config, '--batch', str(args.batch), '--steps', str(args.steps),
                     '--threads', str(args.threads)] + (['--amp'] if args.amp else []) + options


def load_line(when: str) -> str:
    """'machine: N CPUs, load average L at start, torch threads T' (the machine is shared: numbers vary)."""
    return (f'machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at {when}, '
            f'torch threads {torch.get_num_threads()}')


def run_task_benchmark(script: Union[str, Sequence[str]], doc: str, batch: int,
                       configs: Tuple[Optional[str], Union[str, Sequence[str]]], tiny_check: Callable[..., Any],
                       full_step: Callable[..., dict], print_tiny: Callable[[Any], None],
                       print_full: Callable[[dict], None], argv: Optional[Sequence[str]] = None, steps: int = 1,
                       modes: Sequence[str] = ('tiny', 'full'), data_root: Optional[str] = None,
                       work_dir: Optional[str] = None,
                       add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None,
                       tiny_options: Sequence[str] = (), full_options: Sequence[str] = (),
                       report_load: bool = False) -> None:
    """The `main` of a config-based task benchmark (det, seg, pose, cls) with `add_common_arguments`' options.

    tiny: `tiny_check(config, data_root, work_dir, iters, pretrained)`, printed with `print_tiny`. full: for each
    config, in a fresh child process (`script ... full --single`), `full_step(config, batch, amp, steps)`, whose
    JSON result the parent prints with `print_full`; a child that fails is reported and the others still run.

    Args:
        script: what the child runs: a script path, or the start of its command line (`['-m', module, task]`).
        doc: the command's docstring, for --help.
        batch: default images per full-size step.
        configs: the default tiny config and the default full-size config (or list of them).
        argv: the command line; sys.argv by default.
        steps: default full-size steps to time.
        modes: choices of the mode ('all' runs tiny, then full on the default full-size configs).
        data_root: default synthetic set of the tiny mode.
        work_dir: default work dir of the tiny mode.
        add_arguments: adds the task's own options to the parser.
        tiny_options: names of the task's options passed to `tiny_check` as keywords.
        full_options: names of the task's options passed to `full_step` as keywords (and on to the child).
        report_load: print the machine's CPU count and load average before and after the measurements.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, batch, steps, modes, data_root, work_dir)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    full_kwargs = {name: getattr(args, name) for name in full_options}
    default_full = [configs[1]] if isinstance(configs[1], str) else list(configs[1])
    if args.single:  # the child: measure here, one JSON line for the parent
        print(json.dumps(full_step(args.config or default_full[0], args.batch, args.amp, args.steps, **full_kwargs)))
        return
    if report_load:
        print(load_line('start'))
    if args.mode in ('tiny', 'all'):
        print_tiny(tiny_check(args.config or configs[0], args.data_root, args.work_dir, args.iters, args.pretrained,
                              **{name: getattr(args, name) for name in tiny_options}))
    if args.mode in ('full', 'all'):
        chosen = args.configs or ([args.config] if args.config and args.mode == 'full' else default_full)
        failed = []
        for config in chosen:
            try:
                result = run_in_fresh_process(child_arguments(script, args, config, full_kwargs))
            except FreshProcessError as error:
                print(f'{config}: failed\n{error.stderr[-2000:]}', flush=True)
                failed.append(config)
                continue
            print_full(result)
        if failed and len(failed) == len(chosen):
            raise SystemExit(f'every measurement failed: {", ".join(failed)}')
    if report_load:
        print(f'load average at the end: {os.getloadavg()[0]:.1f}')


# ------------------------------------------------------------------------------------------------ synthetic steps

def synthetic_instances(height: int, width: int, num: int = 3, seed: int = 0):
    """`num` rectangular ground-truth instances (boxes, labels, bitmap masks) inside an image."""
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    generator = torch.Generator().manual_seed(seed)
    boxes, masks = [], torch.zeros(num, height, width, dtype=torch.uint8)
    for index in range(num):
        w, h = (torch.rand(2, generator=generator) * 0.4 + 0.1) * torch.tensor([width, height])
        x, y = torch.rand(2, generator=generator) * torch.tensor([width - w, height - h])
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        boxes.append([x0, y0, x1, y1])
        masks[index, y0:y1, x0:x1] = 1
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.arange(num) % 3,
                        masks=BitmapMasks(masks.numpy(), height, width))


def training_input_size(cfg: Config) -> Tuple[int, int]:
    """(height, width) of a training input of a config of any task: the LSJ size (det), the crop (seg), the codec
    input (pose), the training transform's size (cls) or the MAE image size (pretraining)."""
    from .configs import config_task
    task = config_task(cfg)
    if task == 'det':
        return tuple(cfg.image_size)
    if task == 'seg':
        return tuple(cfg.model.data_preprocessor['size'])
    if task == 'pose':
        width, height = cfg.codec['input_size']
        return height, width
    if task == 'cls':
        size = cfg.train_dataloader.dataset.transform['input_size']
        return (size, size) if isinstance(size, int) else tuple(size)[-2:]
    size = cfg.model.get('img_size', 224)
    return (size, size) if isinstance(size, int) else tuple(size)


def synthetic_training_loss(cfg: Config, model: torch.nn.Module, batch: int,
                            device: str = 'cpu') -> Callable[[], torch.Tensor]:
    """A closure that runs one training forward pass of `model` (built from `cfg`, any task) on a fixed synthetic
    batch of `batch` inputs at the training size, as the data preprocessor hands them over, and returns the
    summed loss: what one training step costs without a dataset."""
    from .configs import config_task
    task = config_task(cfg)
    height, width = training_input_size(cfg)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, height, width, generator=generator).to(device)
    if task == 'det':
        from mmdet.structures import DetDataSample
        samples = []
        for index in range(batch):
            sample = DetDataSample(metainfo=dict(img_shape=(height, width), pad_shape=(height, width),
                                                 ori_shape=(height, width), batch_input_shape=(height, width),
                                                 scale_factor=(1.0, 1.0)))
            sample.gt_instances = synthetic_instances(height, width, seed=index).to(device)
            samples.append(sample)

        def detection_loss() -> torch.Tensor:
            from mmengine.registry import DefaultScope
            with DefaultScope.overwrite_default_scope('mmdet'):  # mmdet's heads build their parts by scope
                return model.parse_losses(model.loss(inputs, samples))[0]
        return detection_loss
    if task == 'seg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        num_classes = cfg.model.decode_head.num_classes
        samples = []
        for _ in range(batch):
            sample = SegDataSample(metainfo=dict(img_shape=(height, width), pad_shape=(height, width),
                                                 ori_shape=(height, width)))
            labels = torch.randint(0, num_classes, (1, height, width), generator=generator)
            sample.gt_sem_seg = PixelData(data=labels.to(device))
            samples.append(sample)
        return lambda: sum(value for key, value in model.loss(inputs, samples).items() if 'loss' in key)
    if task == 'pose':
        heat_w, heat_h = cfg.codec['heatmap_size']
        target = torch.rand(batch, 17, heat_h, heat_w, generator=generator).to(device)
        weights = torch.ones(batch, 17, device=device)
        return lambda: model.loss_module(model(inputs, mode='tensor'), target, weights)
    if task == 'cls':
        labels = torch.arange(batch, device=device) % cfg.model.num_classes
        return lambda: model(inputs, labels, mode='loss')['loss']
    return lambda: model(inputs, mode='loss')['loss']  # MAE pretraining
