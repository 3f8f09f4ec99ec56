"""One run of a study, in a fresh process (or one per rank)::

    python -m acnet_backbone.study.worker RUN_DIR [--launcher none|pytorch|slurm]

reads ``RUN_DIR/run.json`` and ``RUN_DIR/config.py`` (written by the study),
trains with mmengine's Runner through :func:`acnet_backbone.training.train`
(what ``tools/train.py`` runs), resuming from the run's last checkpoint where
there is one, evaluates once with the config's own evaluator and writes
``RUN_DIR/result.json`` (rank 0, atomically; every metric the evaluator
returned) as the last step.
"""
import argparse
import os.path as osp
import statistics
import sys
import time
import warnings
from typing import Dict, List

import torch
from mmengine.hooks import Hook

from .runs import complete_metrics

class StudyRecorder(Hook):
    """Keeps what a study reports about training, across resumes: the
    training loss as window means ``[[last iteration, mean loss], ...]``
    (about 60 windows per run) and the training time. Both travel in the
    checkpoints' meta (``meta['study']``), so a resumed run adds its time to
    the time before the checkpoint and keeps its curve; a checkpoint of
    another run (``load_from`` of a fine-tune) is ignored.

    Args:
        run_id (str): identifies the run (the hash of its merged config).
    """

    priority = 'LOW'

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.curve: List[List[float]] = []
        self._pending: List[float] = []
        self._base = 0.0
        self._start = None
        self.window = 1

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        state = (checkpoint.get('meta') or {}).get('study') or {}
        if state.get('run_id') != self.run_id:
            return
        self.curve = [list(p) for p in state.get('loss_curve', [])]
        self._pending = list(state.get('pending', []))
        self._base = float(state.get('train_seconds', 0.0))

    def before_train(self, runner) -> None:
        self.window = max(1, runner.max_iters // 60)
        self._start = time.perf_counter()

    @property
    def train_seconds(self) -> float:
        now = time.perf_counter()
        return self._base + (now - self._start if self._start else 0.0)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        if isinstance(loss, torch.Tensor):
            loss = loss.detach()
        self._pending.append(float(loss))
        it = runner.iter + 1
        if len(self._pending) >= self.window or it >= runner.max_iters:
            self.curve.append([it, statistics.fmean(self._pending)])
            self._pending = []

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        checkpoint.setdefault('meta', {})['study'] = dict(
            run_id=self.run_id, train_seconds=self.train_seconds,
            loss_curve=self.curve, pending=self._pending)

    def after_train(self, runner) -> None:
        self._base, self._start = self.train_seconds, None


def final_loss(curve: List[List[float]], iters: int = 100):
    """Mean training loss over (about) the last ``iters`` iterations."""
    if not curve:
        return None
    start = curve[-1][0] - iters
    tail = [p[1] for p in curve if p[0] > start] or [curve[-1][1]]
    return statistics.fmean(tail)


def record(spec: Dict, cfg, runner, metrics: Dict, no_detections: bool,
           recorder: StudyRecorder) -> Dict:
    """``result.json``'s content."""
    from mmengine.dist import get_world_size

    from ..training import last_checkpoint, schedule_length
    from .report import short_name
    length, unit = schedule_length(cfg)
    result = dict(
        config=spec['name'], config_path=spec['config'], seed=spec['seed'],
        run_id=spec['run_id'],
        schedule=dict(length=length, unit=unit),
        iterations=int(runner.iter), world_size=get_world_size(),
        launcher=cfg.launcher,
        train_seconds=round(recorder.train_seconds, 1),
        final_loss=final_loss(recorder.curve), loss_curve=recorder.curve,
        cfg_options=spec['cfg_options'],
        checkpoint=last_checkpoint(cfg.work_dir),
        no_detections=no_detections, metrics=metrics)
    for key, value in metrics.items():
        result.setdefault(short_name(key), value)
    from .runs import package_versions
    result['versions'] = package_versions()
    return result


def run(run_dir: str, launcher: str = 'none') -> int:
    """Train and evaluate the run in ``run_dir``; returns the exit code."""
    import json

    from mmengine.config import Config
    from mmengine.dist import get_rank

    from ..training import finish_distributed, train_and_evaluate
    from ..staging import write_json
    with open(osp.join(run_dir, 'run.json')) as f:
        spec = json.load(f)
    cfg = Config.fromfile(osp.join(run_dir, 'config.py'))
    cfg.work_dir = run_dir
    cfg.launcher = launcher
    cfg.resume = True  # from the run's last checkpoint, where there is one
    cfg.load_from = None
    recorder = StudyRecorder(spec['run_id'])
    runner, metrics = train_and_evaluate(cfg, hooks=[recorder])
    if get_rank() == 0:
        metrics, empty = complete_metrics(metrics, cfg.val_evaluator)
        write_json(osp.join(run_dir, 'result.json'),
                   record(spec, cfg, runner, metrics, empty, recorder))
    finish_distributed()
    return 0


def main(argv=None) -> int:
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    parser = argparse.ArgumentParser(description='one run of a study')
    parser.add_argument('run_dir')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'])
    args = parser.parse_args(argv)
    import acnet_backbone  # noqa: F401  (safe loading, registry)
    return run(args.run_dir, args.launcher)


if __name__ == '__main__':
    sys.exit(main())
