"""Training with mmengine's Runner, the one entry point of ``tools/train.py``,
the study's runs (``acnet_backbone.study``) and the demo.

mmengine 0.10.7's launchers assume CUDA: ``init_dist`` calls
``torch.cuda.set_device`` and the Runner wraps the model in DDP with
``device_ids=[LOCAL_RANK]``. :func:`setup_distributed` makes the same command
lines (``torchrun``, ``srun``) train on CPU-only machines: the process group
on gloo and CPU DDP. On a machine with CUDA it changes nothing.
"""
import os
import subprocess
from typing import Dict, Iterable, Optional, Tuple

import torch
from mmengine.config import Config

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def _slurm_env() -> None:
    """The variables torch's ``env://`` rendezvous reads, from Slurm's (what
    mmengine's slurm launcher derives, without its ``set_device``)."""
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1').strip()


def setup_distributed(cfg: Config) -> None:
    """Prepare ``cfg`` (and the process group) for its launcher on a machine
    without CUDA: gloo instead of NCCL, DDP over CPU tensors
    (``device_ids=None``). Does nothing for ``launcher='none'`` or where CUDA
    is available (mmengine's own path)."""
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    env_cfg = dict(cfg.get('env_cfg') or {})
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    cfg.env_cfg = env_cfg
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)  # mmengine's default
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if launcher in ('pytorch', 'slurm'):
        import torch.distributed as dist
        if not dist.is_initialized():
            if launcher == 'slurm':
                _slurm_env()
            # the Runner finds the group initialised and keeps it
            dist.init_process_group(backend='gloo')


def finish_distributed() -> None:
    """The last step of a distributed process: wait for every rank, then
    leave at once (exit status 0). Tearing gloo down in this process -
    ``destroy_process_group`` or the interpreter's own exit with gloo's
    threads alive - aborted a rank now and then on these CPU machines
    ("terminate called without an active exception", SIGABRT, right after
    the study's evaluation, in a CI run of
    ``test_pytorch_launcher_two_processes_on_cpu``), so the process ends
    with ``os._exit`` after flushing its logs and streams; everything it
    writes is written before. No-op without a process group."""
    import logging
    import sys

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def disable_periodic_validation(cfg: Config) -> None:
    """No validation during training (the caller evaluates once at the end):
    for iteration- and epoch-based loops alike."""
    total = cfg.train_cfg.get('max_iters', cfg.train_cfg.get('max_epochs'))
    cfg.train_cfg.val_begin = int(total) + 1


def schedule_length(cfg: Config) -> Tuple[int, str]:
    """``(length, unit)`` of the training schedule, unit ``'iter'`` or
    ``'epoch'``; raises ``ValueError`` when ``train_cfg`` has neither."""
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg:
        return int(train_cfg['max_iters']), 'iter'
    if 'max_epochs' in train_cfg:
        return int(train_cfg['max_epochs']), 'epoch'
    raise ValueError('train_cfg has neither max_iters nor max_epochs')


def set_iterations(cfg: Config, iters: int) -> None:
    """Shorten (or lengthen) an iteration-based schedule to ``iters``: the
    training loop, the checkpoint interval and every LR/momentum scheduler
    (warm-up included) are rescaled, so any positive length works."""
    if iters < 1:
        raise ValueError(f'iterations must be positive, got {iters}')
    old, unit = schedule_length(cfg)
    if unit != 'iter':
        raise ValueError('set_iterations needs an iteration-based schedule')
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    ckpt = cfg.get('default_hooks', {}).get('checkpoint')
    if ckpt is not None:
        ckpt.interval = iters

    def scale(v):
        return max(0, min(iters, round(v * iters / old)))

    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        begin = scale(sched.get('begin', 0))
        end = scale(sched.get('end', old))
        if end <= begin:  # a phase too short for the new length keeps one
            end = min(iters, begin + 1)
            begin = end - 1
        sched.begin, sched.end = begin, end
        if 'T_max' in sched:
            sched.T_max = end - begin


def build_runner(cfg: Config):
    """mmengine's Runner (or the config's own runner type), after
    :func:`setup_distributed`."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    setup_distributed(cfg)
    return (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
            RUNNERS.build(cfg))


def train(cfg: Config, hooks: Iterable = ()):
    """Build the runner, register ``hooks`` (priority LOW), train; returns the
    runner."""
    runner = build_runner(cfg)
    for hook in hooks:
        runner.register_hook(hook, priority='LOW')
    runner.train()
    return runner


def train_and_evaluate(cfg: Config, hooks: Iterable = ()) -> Tuple[object,
                                                                   Dict]:
    """Train with periodic validation off, then run the config's validation
    loop (its own evaluator) once; returns ``(runner, metrics)`` with every
    metric the evaluator returned (floats)."""
    disable_periodic_validation(cfg)
    runner = train(cfg, hooks)
    metrics = runner.val_loop.run()
    return runner, {k: _number(v) for k, v in metrics.items()}


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine wrote last in ``work_dir`` (its
    ``last_checkpoint`` file), or None."""
    from mmengine.runner import find_latest_checkpoint
    return find_latest_checkpoint(work_dir)
