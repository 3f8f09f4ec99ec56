"""The studies' tables: a ``compare.json``'s summary, paired differences
and pairs it did not make itself, an INT8 study, the results at a glance, a
recorded table and a journey's branches."""
import os.path as osp
from typing import Dict, List, Optional

from .common import (SHORT, Context, ci, digits, label, md_table, num,
                     seed_range, short)

#: The results at a glance: (task, setting, JSON, results page). A JSON
#: with several differences gives one row per difference. ``GLANCE_MORE``
#: rows appear only in the results index (``glance scope=all``), not in the
#: README.
GLANCE_MORE = [
    ('detection', 'RetinaNet R-18, which starting point',
     'docs/results/start_det.json',
     'docs/results/detection.md#which-starting-point'),
]
GLANCE = [
    ('detection', 'RetinaNet R-18, pretrained then fine-tuned',
     'docs/results/journey.json',
     'docs/results/detection.md#pretrained-then-fine-tuned-the-journey'),
    ('detection', 'RetinaNet R-18, from scratch',
     'docs/results/study_scratch.json',
     'docs/results/detection.md#from-scratch-plain-vs-bn-vs-online'),
    ('detection', "RTMDet-tiny, from scratch, ACB CSPNeXt ('bn')",
     'docs/results/study_rtmdet.json',
     'docs/results/detection.md#rtmdet-tiny-plain-vs-acb-cspnext'),
    ('segmentation', 'd8 FCN R-18, pretrained then fine-tuned',
     'docs/results/journey_seg_d8.json',
     'docs/results/segmentation.md#fine-tuned-from-each-seeds-pretraining'),
    ('segmentation', 'FCN-32s R-18, pretrained then fine-tuned',
     'docs/results/journey_seg_fcn32s.json',
     'docs/results/segmentation.md#fine-tuned-from-each-seeds-pretraining'),
    ('segmentation', 'd8 FCN R-18, from scratch',
     'docs/results/study_seg_d8.json',
     'docs/results/segmentation.md#from-scratch'),
    ('segmentation', 'FCN-32s R-18, from scratch',
     'docs/results/study_seg_fcn32s.json',
     'docs/results/segmentation.md#from-scratch'),
    ('detection, real images', 'RetinaNet R-18, NEON tree crowns, from '
     'scratch', 'docs/results/trees_scratch.json',
     'docs/results/trees.md#from-scratch'),
    ('detection, real images', 'RetinaNet R-18, NEON tree crowns, '
     "fine-tuned, plain -> ACB 'bn', gamma 1/3",
     'docs/results/trees_ft.json',
     'docs/results/trees.md#fine-tuned-the-recommended-route'),
]


def _study(ctx: Context, path: str, key: Optional[str]) -> Dict:
    data = ctx.load(path)
    return data[key] if key else data


def _per_seed(runs: List[Dict], config: str, metric: str) -> Dict[int, float]:
    return {r['seed']: r[metric] for r in runs if r['config'] == config}


def study_summary(ctx: Context, path: str, key: Optional[str] = None,
                  labels: Optional[str] = None) -> str:
    """Per config of a ``compare.json`` (or its ``key``, e.g. ``pretrain``):
    n, mean +- sample std, 95% interval, every seed, (mAP@0.5 and mAP@0.75
    for COCO metrics), mean training seconds and final loss."""
    data = _study(ctx, path, key)
    metric = data['summary'][0].get('metric', 'coco/bbox_mAP')
    m, nd = short(metric), digits(metric)
    coco = m == 'bbox_mAP'
    seeds = sorted({r['seed'] for r in data['runs']})
    headers = ['config', 'n', f'{m} mean +- std', '95% CI',
               f'per seed ({seed_range(seeds)})']
    headers += ['mAP@0.5', 'mAP@0.75'] if coco else []
    headers += ['train s', 'final loss']
    rows = []
    for s in data['summary']:
        vals = _per_seed(data['runs'], s['config'], m)
        row = [label(s['config'], labels), s['n'],
               f'{num(s[m + "_mean"], nd)} +- {num(s[m + "_std"], nd)}',
               ci(s.get(m + '_ci95'), nd, sign=False),
               ', '.join(num(vals[k], nd) for k in sorted(vals))]
        if coco:
            row += [num(s['bbox_mAP_50_mean']), num(s['bbox_mAP_75_mean'])]
        row += [f'{s["train_seconds_mean"]:.0f}', num(s['final_loss_mean'])]
        rows.append(row)
    return md_table(headers, rows)


def study_diffs(ctx: Context, path: str, key: Optional[str] = None,
                labels: Optional[str] = None) -> str:
    """The paired (by seed) differences of a ``compare.json``: mean, sd of
    the differences, Student-t 95% interval and every seed's difference."""
    data = _study(ctx, path, key)
    rows = []
    for d in data['differences']:
        m = short(d.get('metric', 'coco/bbox_mAP'))
        nd = digits(m)
        a = _per_seed(data['runs'], d['config'], m)
        b = _per_seed(data['runs'], d['baseline'], m)
        per = [num(a[s] - b[s], nd, True) for s in sorted(set(a) & set(b))]
        rows.append([f'{label(d["config"], labels)} - '
                     f'{label(d["baseline"], labels)}', d['n'],
                     num(d[m + '_diff_mean'], nd, True),
                     num(d[m + '_diff_std'], nd), ci(d['ci95'], nd),
                     f'{", ".join(per)} (seeds {seed_range(d["seeds"])})'])
    return md_table(['paired by seed', 'n', f'{m} difference',
                     'sd of the differences', '95% CI (Student t)',
                     'per seed'], rows)


def study_pairs(ctx: Context, path: str, pairs: str,
                labels: Optional[str] = None) -> str:
    """Paired (by seed) differences between two configs of a
    ``compare.json`` that the study did not pair itself (neither is its
    baseline), in :func:`study_diffs`' columns. ``pairs``:
    ``CONFIG:OTHER[,CONFIG:OTHER...]`` (``CONFIG - OTHER`` each)."""
    from ...study.report import paired_difference
    data = ctx.load(path)
    m = short(data['summary'][0].get('metric', 'coco/bbox_mAP'))
    nd = digits(m)
    rows = []
    for pair in pairs.split(','):
        config, other = pair.split(':')
        d = paired_difference(_per_seed(data['runs'], config, m),
                              _per_seed(data['runs'], other, m))
        if d is None:
            raise ValueError(f'{path}: no seed has both {config} and {other}')
        rows.append([f'{label(config, labels)} - {label(other, labels)}',
                     d['n'], num(d['mean'], nd, True), num(d['std'], nd),
                     ci(d['ci95'], nd),
                     ', '.join(num(v, nd, True) for v in d['per_seed']) +
                     f' (seeds {seed_range(d["seeds"])})'])
    return md_table(['paired by seed', 'n', f'{m} difference',
                     'sd of the differences', '95% CI (Student t)',
                     'per seed'], rows)


def int8_study(ctx: Context, path: str, per_seed: str = 'drop') -> str:
    """An ``int8_study.json``: per group FP32 and INT8 bbox mAP, the drop
    with its interval, per seed (``per_seed=drop`` or ``maps``) and the
    median INT8 / FP32 latency ratio."""
    data = ctx.load(path)
    rows = []
    for s in data['summary']:
        runs = sorted((r for r in data['runs'] if r['name'] == s['name']),
                      key=lambda r: r['seed'])
        seeds = seed_range([r['seed'] for r in runs])
        if per_seed == 'maps':
            per = ', '.join(f'{num(r["bbox_mAP_fp32"])} -> '
                            f'{num(r["bbox_mAP_int8"])}' for r in runs)
        else:
            per = ', '.join(num(r['drop'], 3, True) for r in runs)
        rows.append([label(s['name']), s['n'], num(s['bbox_mAP_fp32_mean']),
                     num(s['bbox_mAP_int8_mean']), num(s['drop_mean'], 4, True),
                     ci(s['drop_ci95'], 4), f'{per} (seeds {seeds})',
                     f'{s["latency_ratio_median"]:.2f}'])
    what = 'FP32 -> INT8 bbox mAP' if per_seed == 'maps' else 'drop'
    return md_table(['detector', 'n', 'FP32 bbox mAP', 'INT8 bbox mAP',
                     'drop (mean)', '95% CI of the drop', f'per seed {what}',
                     'INT8 / FP32 time (median)'], rows)


def table(ctx: Context, path: str, key: str = 'table') -> str:
    """A recorded table kept as JSON (``{"columns": [...], "rows": [[...]]}``
    under ``key``): measurements whose tool writes no JSON of its own."""
    t = ctx.load(path)[key]
    return md_table(t['columns'], t['rows'])


def glance(ctx: Context, scope: str = 'front') -> str:
    """The results at a glance, one row per paired difference of every study
    in :data:`GLANCE` (``scope=all``: and :data:`GLANCE_MORE`); a study whose
    JSON is not there yet is left out."""
    if scope not in ('front', 'all'):
        raise TypeError(f"scope must be 'front' or 'all', not {scope!r}")
    rows = []
    for task, setting, path, page in GLANCE + (
            GLANCE_MORE if scope == 'all' else []):
        if not osp.isfile(osp.join(ctx.root, path)):
            continue
        data = ctx.load(path)
        means = {s['config']: s for s in data['summary']}
        for d in data['differences']:
            m = short(d.get('metric', 'coco/bbox_mAP'))
            nd = digits(m)
            mode = ''
            if len(data['differences']) > 1:
                mode = ', ' + SHORT.get(d['config'],
                                        label(d['config'], 'start'))
            rows.append([task, setting + mode, m,
                         num(means[d['baseline']][m + '_mean'], nd),
                         num(means[d['config']][m + '_mean'], nd),
                         f'**{num(d[m + "_diff_mean"], nd, True)}** '
                         f'{ci(d["ci95"], nd)}', d['n'],
                         f'[results]({ctx.link(page)})'])
    return md_table(['task', 'setting', 'metric', 'plain', 'ACB',
                     'ACB - plain [95% CI]', 'n (seeds)', 'details'], rows)


def branches(ctx: Context, path: str, labels: Optional[str] = None) -> str:
    """A journey's ``branches`` (:mod:`acnet_backbone.study.branches`): per
    ACB config and stage, mean |branch gamma or scale|, the branch kernels'
    weight against the square kernel as they fuse, and how far the branch
    BNs' running statistics moved, each the mean over the config's seeds."""
    data = ctx.load(path)
    rows = []
    for config, stages in data['branches'].items():
        for stage in sorted(stages, key=int):
            v = stages[stage]
            rows.append([label(config, labels), stage,
                         num(v['scale_abs_mean']),
                         num(v['kernel_share']),
                         '-' if v['stats_moved'] is None
                         else num(v['stats_moved'], 2)])
    return md_table(['fine-tuned', 'stage', 'mean abs. branch gamma or scale',
                     'branch kernels / square kernel (Frobenius norm)',
                     'branch BN statistics moved (max)'], rows)
