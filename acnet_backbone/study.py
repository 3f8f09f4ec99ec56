"""A/B studies of detectors: train every config under every seed with
mmengine's Runner, then summarise with per-seed paired differences and
Student-t intervals (``tools/compare.py`` is the command line).

Layout of a study folder ``W``::

    W/<config name>/seed_<N>/run.json     what the run is (config, seed, options)
    W/<config name>/seed_<N>/result.json  written last, atomically: the run is done
    W/<config name>/seed_<N>/...          mmengine's work dir (logs, checkpoints)
    W/compare.json, W/compare.md, W/compare.png
"""
import json
import math
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

from mmengine.hooks import Hook

METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75')


class StudyError(RuntimeError):
    """Bad input to a study: reported in one line."""


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, rename)."""
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(osp.abspath(path)),
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the staging only
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2))


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def run_dir(work_dir: str, config: str, seed: int) -> str:
    return osp.join(work_dir, config_name(config), f'seed_{seed}')


def run_spec(config: str, seed: int, cfg_options: Optional[Dict]) -> Dict:
    """What identifies a run: a finished run is reused only for the same."""
    return dict(config=osp.abspath(config), seed=int(seed),
                cfg_options={str(k): repr(v)
                             for k, v in sorted((cfg_options or {}).items())})


def mean_std(values: Sequence[float]):
    """Mean and sample standard deviation (n - 1; None for n < 2)."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def t_interval(values: Sequence[float], level: float = 0.95):
    """Student-t confidence interval of the mean ``[lo, hi]`` (None for n < 2).
    """
    from scipy import stats
    mean, std = mean_std(values)
    if std is None:
        return None
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * std / math.sqrt(
        len(values))
    return [mean - half, mean + half]


def summarise(runs: List[Dict], configs: Sequence[str]) -> Dict:
    """``compare.json``'s content from the finished runs: ``runs``,
    ``summary`` (per config, sample std) and ``differences`` (every config
    after the first minus the first, paired by seed)."""
    by_config = {c: {r['seed']: r for r in runs if r['config'] == c}
                 for c in configs}
    summary = []
    for config in configs:
        rows = [by_config[config][s] for s in sorted(by_config[config])]
        entry = dict(config=config, n=len(rows),
                     seeds=[r['seed'] for r in rows])
        for key in METRICS + ('train_seconds', 'final_loss'):
            vals = [r[key] for r in rows if r.get(key) is not None]
            entry[f'{key}_mean'], entry[f'{key}_std'] = mean_std(vals)
        entry['bbox_mAP_ci95'] = t_interval([r['bbox_mAP'] for r in rows])
        summary.append(entry)
    differences = []
    base = configs[0]
    for config in configs[1:]:
        seeds = sorted(set(by_config[base]) & set(by_config[config]))
        entry = dict(config=config, baseline=base, n=len(seeds), seeds=seeds)
        for key in METRICS:
            diffs = [by_config[config][s][key] - by_config[base][s][key]
                     for s in seeds]
            entry[f'{key}_diff_mean'], entry[f'{key}_diff_std'] = \
                mean_std(diffs)
            ci_key = 'ci95' if key == 'bbox_mAP' else f'{key}_ci95'
            entry[ci_key] = t_interval(diffs)
        differences.append(entry)
    return dict(runs=runs, summary=summary, differences=differences)


def _fmt(value, digits=3):
    return '-' if value is None else f'{value:.{digits}f}'


def _fmt_ci(ci):
    return '-' if ci is None else f'[{ci[0]:+.3f}, {ci[1]:+.3f}]'


def markdown(report: Dict) -> str:
    """The tables of a report, for a README."""
    lines = ['| config | n | bbox mAP mean +- std | 95% CI | per seed '
             '| mAP@0.5 | mAP@0.75 | train s | final loss |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for s in report['summary']:
        per_seed = ', '.join(
            f'{r["bbox_mAP"]:.3f}' for r in sorted(
                (r for r in report['runs'] if r['config'] == s['config']),
                key=lambda r: r['seed']))
        lines.append(
            f'| {s["config"]} | {s["n"]} | {_fmt(s["bbox_mAP_mean"])} +- '
            f'{_fmt(s["bbox_mAP_std"])} | {_fmt_ci(s["bbox_mAP_ci95"])} | '
            f'{per_seed} | {_fmt(s["bbox_mAP_50_mean"])} | '
            f'{_fmt(s["bbox_mAP_75_mean"])} | '
            f'{_fmt(s["train_seconds_mean"], 0)} | '
            f'{_fmt(s["final_loss_mean"])} |')
    if report['differences']:
        lines += ['', '| config - baseline (paired by seed) | n | bbox mAP '
                  'diff mean | 95% CI (Student t) | mAP@0.5 diff | '
                  'mAP@0.75 diff |', '| --- | --- | --- | --- | --- | --- |']
        for d in report['differences']:
            lines.append(
                f'| {d["config"]} - {d["baseline"]} | {d["n"]} | '
                f'{_fmt(d["bbox_mAP_diff_mean"])} | {_fmt_ci(d["ci95"])} | '
                f'{_fmt(d["bbox_mAP_50_diff_mean"])} | '
                f'{_fmt(d["bbox_mAP_75_diff_mean"])} |')
    return '\n'.join(lines) + '\n'


def plot(report: Dict, out_file: str) -> None:
    """Per config the per-seed bbox mAPs with mean and 95% interval (left),
    the training-loss curves (right); written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    configs = [s['config'] for s in report['summary']]
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw=dict(width_ratios=[1, 1.3]))
    for i, s in enumerate(report['summary']):
        color = colors[i % len(colors)]
        runs = [r for r in report['runs'] if r['config'] == s['config']]
        ax1.scatter([i] * len(runs), [r['bbox_mAP'] for r in runs],
                    color=color, alpha=0.6, zorder=3)
        for r in runs:
            ax1.annotate(str(r['seed']), (i, r['bbox_mAP']),
                         textcoords='offset points', xytext=(6, -3),
                         fontsize=7, color='0.4')
        if s['bbox_mAP_mean'] is not None:
            ci = s['bbox_mAP_ci95']
            err = None if ci is None else [[s['bbox_mAP_mean'] - ci[0]],
                                           [ci[1] - s['bbox_mAP_mean']]]
            ax1.errorbar([i + 0.18], [s['bbox_mAP_mean']], yerr=err,
                         fmt='D', color=color, capsize=5, zorder=4)
        for j, r in enumerate(runs):
            curve = r.get('loss_curve') or []
            if curve:
                ax2.plot([p[0] for p in curve], [p[1] for p in curve],
                         color=color, alpha=0.7, lw=1,
                         label=s['config'] if j == 0 else None)
    ax1.set_xticks(range(len(configs)))
    ax1.set_xticklabels(configs, rotation=12, ha='right', fontsize=8)
    ax1.set_ylabel('bbox mAP')
    ax1.set_title('bbox mAP per seed (dots), mean with 95% t-interval')
    ax1.grid(axis='y', alpha=0.3)
    ax2.set_xlabel('iteration')
    ax2.set_ylabel('training loss')
    ax2.set_title('training loss, every seed')
    ax2.grid(alpha=0.3)
    if ax2.lines:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(out_file))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix='.png')
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out_file)


class LossRecorder(Hook):
    """An mmengine hook that keeps the training loss of every iteration as
    window means ``[[last iteration, mean loss], ...]`` in ``path`` (JSON,
    written atomically every window, so a resumed run keeps its curve)."""

    priority = 'LOW'

    def __init__(self, path: str, window: int) -> None:
        self.path = path
        self.window = max(1, int(window))
        self.curve: List[List[float]] = []
        self._pending: List[float] = []
        if osp.isfile(path):
            with open(path) as f:
                self.curve = json.load(f)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        self._pending.append(float(loss))
        it = runner.iter + 1
        if len(self._pending) >= self.window or it >= runner.max_iters:
            # a resumed run may repeat iterations after its last checkpoint
            self.curve = [p for p in self.curve if p[0] < it]
            self.curve.append([it, statistics.fmean(self._pending)])
            self._pending = []
            write_json(self.path, self.curve)


def final_loss(curve: List[List[float]], iters: int = 100):
    """Mean training loss over (about) the last ``iters`` iterations."""
    if not curve:
        return None
    start = curve[-1][0] - iters
    tail = [p[1] for p in curve if p[0] > start] or [curve[-1][1]]
    return statistics.fmean(tail)


def train_one(spec: Dict, out_dir: str, log_file: str) -> None:
    """Train and evaluate one run in this (fresh) process; write
    ``out_dir/result.json`` at the end. Console output goes to ``log_file``.
    """
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = os.fdopen(1, 'w', buffering=1)
    sys.stderr = os.fdopen(2, 'w', buffering=1)
    import warnings
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    import acnet_backbone  # noqa: F401
    from mmengine.config import Config

    from .runner_utils import build_runner

    cfg = Config.fromfile(spec['config'])
    if spec['options']:
        cfg.merge_from_dict(spec['options'])
    cfg.work_dir = out_dir
    cfg.randomness = dict(cfg.get('randomness', {}), seed=spec['seed'])
    cfg.launcher = 'none'
    # resume from the run's last checkpoint where there is one
    cfg.resume = True
    cfg.load_from = None
    # evaluated once, after training, below
    cfg.train_cfg.val_begin = cfg.train_cfg.max_iters + 1
    runner = build_runner(cfg)
    max_iters = int(cfg.train_cfg.max_iters)
    recorder = LossRecorder(osp.join(out_dir, 'loss_curve.json'),
                            max(1, max_iters // 60))
    runner.register_hook(recorder, priority='LOW')
    t0 = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - t0
    metrics = runner.val_loop.run()
    curve = recorder.curve
    result = dict(
        config=config_name(spec['config']),
        config_path=spec['config'],
        seed=spec['seed'],
        iterations=int(cfg.train_cfg.max_iters),
        train_seconds=round(train_s, 1),
        final_loss=final_loss(curve),
        loss_curve=curve,
        cfg_options=spec['cfg_options'])
    # mmdet's CocoMetric returns nothing when no image has a detection
    # above the score threshold (an early, untrained model): that is AP 0
    result['no_detections'] = f'coco/{METRICS[0]}' not in metrics
    for key in METRICS:
        result[key] = float(metrics.get(f'coco/{key}', 0.0))
    write_json(osp.join(out_dir, 'result.json'), result)
