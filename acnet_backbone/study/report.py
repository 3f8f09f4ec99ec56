"""A study's statistics and its report: per config mean, sample std and a
Student-t interval; per config after the first the paired (by seed)
difference to the first with its interval; Markdown tables and a figure.

The metric is any key the evaluator returns (``coco/bbox_mAP`` by default,
``mIoU`` for a segmentor, ``accuracy/top1`` for a classifier); a run record
holds every metric under its short name (the part after the last ``/``),
so ``compare.json`` keeps its ``bbox_mAP_mean`` / ``ci95`` keys for
detectors.
"""
import math
import statistics
from typing import Dict, List, Optional, Sequence

from ..staging import save_figure

DEFAULT_METRIC = 'coco/bbox_mAP'


def short_name(metric: str) -> str:
    """``'coco/bbox_mAP'`` -> ``'bbox_mAP'``: the key of a metric in a run
    record and the prefix of its summary keys."""
    return metric.rsplit('/', 1)[-1]


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


def paired_difference(values: Dict, baseline: Dict) -> Optional[Dict]:
    """``values - baseline`` over the seeds both have (``{seed: value}``
    each): ``seeds``, ``per_seed``, ``n``, ``mean``, ``std`` and the 95%
    Student-t interval ``ci95``; None when no seed pairs."""
    seeds = sorted(set(values) & set(baseline))
    if not seeds:
        return None
    diffs = [values[s] - baseline[s] for s in seeds]
    mean, std = mean_std(diffs)
    return dict(seeds=seeds, per_seed=diffs, n=len(seeds), mean=mean,
                std=std, ci95=t_interval(diffs))


def _side_metrics(name: str) -> List[str]:
    """Metrics summarised beside the main one: mAP@0.5 / mAP@0.75 of a COCO
    mAP."""
    if name.endswith('_mAP'):
        return [f'{name}_50', f'{name}_75']
    return []


def summarise(runs: List[Dict], configs: Sequence[str],
              metric: str = DEFAULT_METRIC) -> Dict:
    """``compare.json``'s content from the finished runs: ``runs``,
    ``summary`` (per config, sample std) and ``differences`` (every config
    after the first minus the first, paired by seed), over ``metric``."""
    name = short_name(metric)
    keys = [name] + _side_metrics(name)
    by_config = {c: {r['seed']: r for r in runs if r['config'] == c}
                 for c in configs}
    summary = []
    for config in configs:
        rows = [by_config[config][s] for s in sorted(by_config[config])]
        entry = dict(config=config, metric=metric, n=len(rows),
                     seeds=[r['seed'] for r in rows])
        for key in keys + ['train_seconds', 'final_loss']:
            vals = [r[key] for r in rows if r.get(key) is not None]
            entry[f'{key}_mean'], entry[f'{key}_std'] = mean_std(vals)
        entry[f'{name}_ci95'] = t_interval([r[name] for r in rows])
        summary.append(entry)
    differences = []
    base = configs[0]
    for config in configs[1:]:
        seeds = sorted(set(by_config[base]) & set(by_config[config]))
        entry = dict(config=config, baseline=base, metric=metric,
                     n=len(seeds), seeds=seeds)
        for key in keys:
            pairs = [(by_config[config][s].get(key),
                      by_config[base][s].get(key)) for s in seeds]
            diffs = [a - b for a, b in pairs
                     if a is not None and b is not None]
            entry[f'{key}_diff_mean'], entry[f'{key}_diff_std'] = \
                mean_std(diffs)
            entry['ci95' if key == name else f'{key}_ci95'] = \
                t_interval(diffs)
        differences.append(entry)
    return dict(runs=runs, summary=summary, differences=differences)


def _fmt(value, digits=3):
    return '-' if value is None else f'{value:.{digits}f}'


def _fmt_ci(ci):
    return '-' if ci is None else f'[{ci[0]:+.3f}, {ci[1]:+.3f}]'


def markdown(report: Dict) -> str:
    """The tables of a report, for a README."""
    if not report['summary']:
        return ''
    metric = report['summary'][0].get('metric', DEFAULT_METRIC)
    name = short_name(metric)
    sides = _side_metrics(name)
    side_heads = ''.join(f' {k} |' for k in sides)
    lines = [f'| config | n | {name} mean +- std | 95% CI | per seed |'
             f'{side_heads} train s | final loss |',
             '| --- ' * (7 + len(sides)) + '|']
    for s in report['summary']:
        per_seed = ', '.join(
            f'{r[name]:.3f}' for r in sorted(
                (r for r in report['runs'] if r['config'] == s['config']),
                key=lambda r: r['seed']))
        side_cells = ''.join(f' {_fmt(s[f"{k}_mean"])} |' for k in sides)
        lines.append(
            f'| {s["config"]} | {s["n"]} | {_fmt(s[f"{name}_mean"])} +- '
            f'{_fmt(s[f"{name}_std"])} | {_fmt_ci(s[f"{name}_ci95"])} | '
            f'{per_seed} |{side_cells} '
            f'{_fmt(s["train_seconds_mean"], 0)} | '
            f'{_fmt(s["final_loss_mean"])} |')
    if report['differences']:
        side_heads = ''.join(f' {k} diff |' for k in sides)
        lines += ['', f'| config - baseline (paired by seed) | n | {name} '
                  f'diff mean | 95% CI (Student t) |{side_heads}',
                  '| --- ' * (4 + len(sides)) + '|']
        for d in report['differences']:
            side_cells = ''.join(f' {_fmt(d[f"{k}_diff_mean"])} |'
                                 for k in sides)
            lines.append(
                f'| {d["config"]} - {d["baseline"]} | {d["n"]} | '
                f'{_fmt(d[f"{name}_diff_mean"])} | {_fmt_ci(d["ci95"])} |'
                f'{side_cells}')
    return '\n'.join(lines) + '\n'


def plot(report: Dict, out_file: str, title: Optional[str] = None) -> None:
    """Per config the per-seed metric values with mean and 95% interval
    (left), the training-loss curves (right); written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    metric = (report['summary'][0].get('metric', DEFAULT_METRIC)
              if report['summary'] else DEFAULT_METRIC)
    name = short_name(metric)
    configs = [s['config'] for s in report['summary']]
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw=dict(width_ratios=[1, 1.3]))
    for i, s in enumerate(report['summary']):
        color = colors[i % len(colors)]
        runs = [r for r in report['runs'] if r['config'] == s['config']]
        ax1.scatter([i] * len(runs), [r[name] for r in runs],
                    color=color, alpha=0.6, zorder=3)
        for r in runs:
            ax1.annotate(str(r['seed']), (i, r[name]),
                         textcoords='offset points', xytext=(6, -3),
                         fontsize=7, color='0.4')
        mean, ci = s[f'{name}_mean'], s[f'{name}_ci95']
        if mean is not None:
            err = None if ci is None else [[mean - ci[0]], [ci[1] - mean]]
            ax1.errorbar([i + 0.18], [mean], yerr=err, fmt='D', color=color,
                         capsize=5, zorder=4)
        for j, r in enumerate(runs):
            curve = r.get('loss_curve') or []
            if curve:
                ax2.plot([p[0] for p in curve], [p[1] for p in curve],
                         color=color, alpha=0.7, lw=1,
                         label=s['config'] if j == 0 else None)
    ax1.set_xticks(range(len(configs)))
    ax1.set_xticklabels(configs, rotation=12, ha='right', fontsize=8)
    ax1.set_ylabel(metric)
    ax1.set_title(f'{name} per seed (dots), mean with 95% t-interval')
    ax1.grid(axis='y', alpha=0.3)
    ax2.set_xlabel('iteration')
    ax2.set_ylabel('training loss')
    ax2.set_title('training loss, every seed')
    ax2.grid(alpha=0.3)
    if ax2.lines:
        ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_file)
