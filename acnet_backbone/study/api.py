"""The study's orchestration: check everything, then train every run of a
plan in its own process through mmengine's launchers, then summarise.

Layout of a study folder ``W``::

    W/<config name>/seed_<N>/run.json     what the run is (merged config, seed)
    W/<config name>/seed_<N>/config.py    the merged config the run trains
    W/<config name>/seed_<N>/result.json  written last, atomically: done
    W/<config name>/seed_<N>/train.log    the run's console output
    W/<config name>/seed_<N>/...          mmengine's work dir (checkpoints)
    W/compare.json, W/compare.md, W/compare.png, W/study.log
"""
import hashlib
import json
import os
import os.path as osp
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from .report import DEFAULT_METRIC, markdown, plot, short_name, summarise
from .runs import (RunSpec, StudyError, check_config, config_name, identity,
                   first_difference, merged_config, package_versions,
                   require_metric, run_dir)
from ..errors import AcnetError
from ..staging import write_json, write_text


class StudyRunError(AcnetError, RuntimeError):
    """A run failed while training or evaluating (its log says why; the
    tools exit with status 1: not bad input)."""


#: the study functions' argument names in messages -> the study tools' flags
#: (``tools/compare.py``, ``tools/journey.py``, ``tools/reevaluate.py``)
FLAGS = dict(gpus='--gpus', launcher='--launcher', seeds='--seeds',
             work_dir='--work-dir', cfg_options='--cfg-options')


def check_launcher(launcher: str, gpus: int) -> None:
    """Refuse, in one line, a launcher this machine cannot start."""
    import torch
    if gpus < 1:
        raise StudyError(f'`gpus` must be at least 1, got {gpus}')
    if launcher == 'none':
        if gpus != 1:
            raise StudyError(f'`gpus` {gpus} needs `launcher` pytorch or '
                             'slurm (launcher none trains in one process)')
    elif launcher == 'pytorch':
        if not torch.distributed.is_available():
            raise StudyError('`launcher` pytorch: this torch has no '
                             'torch.distributed (torchrun cannot start)')
        if torch.cuda.is_available():
            if gpus > torch.cuda.device_count():
                raise StudyError(
                    f'`gpus` {gpus}: this machine has '
                    f'{torch.cuda.device_count()} CUDA device(s)')
        elif gpus > (os.cpu_count() or 1):
            raise StudyError(f'`gpus` {gpus}: this machine has no CUDA '
                             f'device and {os.cpu_count()} CPU(s) for CPU '
                             'processes')
    elif launcher == 'slurm':
        if shutil.which('srun') is None:
            raise StudyError('`launcher` slurm: srun not found (not a Slurm '
                             'cluster)')
    else:
        raise StudyError(f'unknown launcher {launcher!r} (none, pytorch, '
                         'slurm)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch_command(path: str, launcher: str, gpus: int,
                   job_name: str = 'acnet_study') -> List[str]:
    """The command that trains the run in ``path``: one process, one
    ``torchrun`` with ``gpus`` processes, or one ``srun`` with ``gpus``
    tasks (``GPUS_PER_NODE``, ``CPUS_PER_TASK``, ``SRUN_ARGS`` as in
    ``tools/slurm_train.sh``)."""
    worker = ['-m', 'acnet_backbone.study.worker', path]
    if launcher == 'none':
        return [sys.executable, *worker]
    if launcher == 'pytorch':
        return [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
                f'--nproc_per_node={gpus}', '--master_addr=127.0.0.1',
                f'--master_port={_free_port()}', *worker,
                '--launcher', 'pytorch']
    per_node = min(gpus, int(os.environ.get('GPUS_PER_NODE', 8)) or gpus)
    gres = ([f'--gres=gpu:{per_node}']
            if int(os.environ.get('GPUS_PER_NODE', 8)) > 0 else [])
    return ['srun', f'--job-name={job_name}', f'--ntasks={gpus}',
            f'--ntasks-per-node={per_node}', *gres,
            f'--cpus-per-task={os.environ.get("CPUS_PER_TASK", 5)}',
            '--kill-on-bad-exit=1',
            *shlex.split(os.environ.get('SRUN_ARGS', '')),
            sys.executable, '-u', *worker, '--launcher', 'slurm']


def _prepare(plan: Sequence[RunSpec], work_dir: str) -> List[Dict]:
    """Every run's merged config and identity, checked against what the
    folder already holds; nothing is written."""
    prepared = []
    for spec in plan:
        cfg = merged_config(spec)
        content = identity(cfg)
        run_id = hashlib.sha256(json.dumps(content, sort_keys=True).encode()
                                ).hexdigest()[:16]
        path = run_dir(work_dir, spec)
        old_file = osp.join(path, 'run.json')
        if osp.isfile(old_file):
            with open(old_file) as f:
                old = json.load(f)
            if old.get('run_id') != run_id:
                diff = first_difference(old.get('content', {}), content)
                raise StudyError(
                    f'{path} holds a run of another config (first '
                    f'difference: {diff}): use another `work_dir` or '
                    'restore the config')
        prepared.append(dict(spec=spec, cfg=cfg, content=content,
                             run_id=run_id, path=path))
    return prepared


_EXCEPTION = re.compile(r'^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*')


def _failure_line(log: str) -> str:
    """What made the last attempt in ``log`` fail, in one line: the root
    cause torchrun prints (rank, exit code, signal) with the last Python
    exception of the attempt, else that exception, else the last line."""
    try:
        with open(log, errors='replace') as f:
            text = f.read()
    except OSError:
        return ''
    lines = [ln.strip() for ln in text[text.rfind('\n$ ') + 1:].splitlines()
             if ln.strip()]
    if not lines:
        return ''
    errors = [ln for ln in lines if _EXCEPTION.match(ln)
              and 'ChildFailedError' not in ln]  # torchrun's own
    if 'Root Cause (first observed failure):' in lines:
        cause = lines[lines.index('Root Cause (first observed failure):'):]
        keys = ('rank', 'exitcode', 'traceback')
        parts = [re.sub(r'\s+', ' ', ln) for ln in cause
                 if ln.split(':', 1)[0].strip() in keys]
        return '; '.join(parts + errors[-1:])[:400]
    return (errors or lines)[-1][:300]


def _train(run: Dict, launcher: str, gpus: int) -> None:
    """Train one run in its own process(es); raises StudyRunError."""
    spec, path = run['spec'], run['path']
    os.makedirs(path, exist_ok=True)
    if not osp.isfile(osp.join(path, 'run.json')):
        run['cfg'].dump(osp.join(path, 'config.py'))
        write_json(osp.join(path, 'run.json'), dict(
            name=spec.name, config=spec.config, seed=spec.seed,
            cfg_options={str(k): repr(v)
                         for k, v in sorted(spec.options.items())},
            run_id=run['run_id'], versions=package_versions(),
            content=run['content']))
    log = osp.join(path, 'train.log')
    cmd = launch_command(path, launcher, gpus,
                         job_name=f'{spec.name}-s{spec.seed}')
    with open(log, 'a') as out:
        out.write(f'\n$ {shlex.join(cmd)}\n')
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C: stop the whole run, keep its files
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
    if code != 0 or not osp.isfile(osp.join(path, 'result.json')):
        raise StudyRunError(f'run {spec.name} seed {spec.seed} failed (exit '
                            f'{code}): {_failure_line(log)} (log: {log})')


def _load_result(run: Dict, metric: str) -> Dict:
    with open(osp.join(run['path'], 'result.json')) as f:
        result = json.load(f)
    result[short_name(metric)] = require_metric(
        result, metric, f'run {run["spec"].name} seed {run["spec"].seed}')
    return result


def _logger(work_dir: str):
    from mmengine.logging import MMLogger
    return MMLogger.get_instance(
        f'acnet_study_{time.time_ns()}', logger_name='study',
        log_file=osp.join(work_dir, 'study.log'), file_mode='a')


def run_plan(plan: Sequence[RunSpec], work_dir: str,
             metric: str = DEFAULT_METRIC, launcher: str = 'none',
             gpus: int = 1, title: Optional[str] = None,
             logger=None) -> Dict:
    """Train every run of ``plan`` that is not done yet (in order), then
    summarise all of them over ``metric``: writes ``work_dir/compare.json``
    (``runs``, ``summary``, ``differences`` to the plan's first config),
    ``compare.md``, ``compare.png`` and returns the report.

    Everything that can be checked is checked before anything is trained or
    written (StudyError, one line): configs, datasets, the metric against
    the evaluator, the launcher, and every run already in ``work_dir`` (a
    changed merged config is refused with its first differing key). A
    finished run is reused, an interrupted one resumes from its last
    checkpoint. A failed run raises StudyRunError.
    """
    check_launcher(launcher, gpus)
    for spec in {s.config: s for s in plan}.values():
        check_config(merged_config(spec), spec.config, metric)
    runs = _prepare(plan, work_dir)
    try:
        os.makedirs(work_dir, exist_ok=True)
    except OSError as err:
        raise StudyError(f'cannot create {work_dir}: {err.strerror}') from None
    logger = logger or _logger(work_dir)
    todo = [r for r in runs
            if not osp.isfile(osp.join(r['path'], 'result.json'))]
    logger.info(f'{len(runs)} runs, {len(runs) - len(todo)} already done, '
                f'{len(todo)} to train in {work_dir} (launcher {launcher}, '
                f'{gpus} process(es) per run)')
    spent = []
    for i, run in enumerate(todo):
        spec = run['spec']
        eta = ('' if not spent else
               f', ETA {sum(spent) / len(spent) * (len(todo) - i) / 60:.0f}'
               ' min')
        logger.info(f'run {i + 1}/{len(todo)}: {spec.name} seed {spec.seed}'
                    f' (log: {osp.join(run["path"], "train.log")}{eta})')
        t0 = time.perf_counter()
        _train(run, launcher, gpus)
        spent.append(time.perf_counter() - t0)
        res = _load_result(run, metric)
        logger.info(f'  {metric} {res[short_name(metric)]:.3f}, final loss '
                    f'{res["final_loss"] or float("nan"):.3f}, '
                    f'{res["train_seconds"]:.0f} s training')
    results = [_load_result(r, metric) for r in runs]
    names = list(dict.fromkeys(r['spec'].name for r in runs))
    report = summarise(results, names, metric)
    write_json(osp.join(work_dir, 'compare.json'), report)
    write_text(osp.join(work_dir, 'compare.md'), markdown(report))
    plot(report, osp.join(work_dir, 'compare.png'), title=title)
    return report


def study_plan(configs: Sequence[str], seeds: Sequence[int],
               cfg_options: Optional[Dict] = None) -> List[RunSpec]:
    """Every config under every seed (seed-major order, so that a study
    stopped early holds complete pairs)."""
    if not configs:
        raise StudyError('no config given')
    if not seeds:
        raise StudyError('no seed given')
    if len(set(seeds)) != len(seeds):
        raise StudyError(f'`seeds` repeats a seed: {list(seeds)}')
    if any(s < 0 for s in seeds):
        raise StudyError(f'`seeds` must be non-negative: {list(seeds)}')
    names = [config_name(c) for c in configs]
    if len(set(names)) != len(names):
        raise StudyError(f'two configs share a name: {names}')
    return [RunSpec(c, int(s), dict(cfg_options or {}))
            for s in seeds for c in configs]


def run_study(configs: Sequence[str], seeds: Sequence[int], work_dir: str,
              cfg_options: Optional[Dict] = None, **kwargs) -> Dict:
    """The A/B study of ``tools/compare.py``: every config under every seed,
    differences to the first config; see :func:`run_plan` for the rest."""
    return run_plan(study_plan(configs, seeds, cfg_options), work_dir,
                    **kwargs)
