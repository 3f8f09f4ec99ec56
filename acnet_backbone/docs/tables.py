"""Renderers: one JSON file (or a few) -> one Markdown table.

Each renderer takes a :class:`Context` (where the table goes, for relative
links), the JSON paths of its marker (relative to the repository root) and
the marker's ``key=value`` options, and returns the table's text.
"""
import json
import os.path as osp
import posixpath
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ..tables import markdown_table

#: How configs and study groups are named in the tables (anything else is
#: shown by its config name).
LABELS = {
    'retinanet_fcnresnet18_fpn_shapes': 'plain ResNet-18',
    'retinanet_acresnet18_fpn_shapes': "ACResNet-18 'bn'",
    'retinanet_acresnet18-online_fpn_shapes': "ACResNet-18 'online'",
    'retinanet_fcnresnet18_fpn_shapes-ft': 'from ResNet-18',
    'retinanet_acresnet18_fpn_shapes-ft': "from ACResNet-18 'bn'",
    'fcnresnet18_shapes-cls': 'ResNet-18 (`fcnresnet18_shapes-cls`)',
    'acresnet18_shapes-cls': "ACResNet-18 'bn' (`acresnet18_shapes-cls`)",
    'rtmdet_tiny_shapes': 'RTMDet-tiny, CSPNeXt',
    'rtmdet_tiny-acb_shapes': "RTMDet-tiny, ACB CSPNeXt ('bn')",
    'fcn32s_fcnresnet18_shapes': 'FCN-32s, plain ResNet-18',
    'fcn32s_acresnet18_shapes': 'FCN-32s, ACResNet-18',
    'fcn-d8_fcnresnet18_shapes': 'd8 FCN, plain ResNet-18',
    'fcn-d8_acresnet18_shapes': 'd8 FCN, ACResNet-18',
    'fcn32s_fcnresnet18_shapes-ft': 'FCN-32s from ResNet-18',
    'fcn32s_acresnet18_shapes-ft': 'FCN-32s from ACResNet-18',
    'fcn-d8_fcnresnet18_shapes-ft': 'd8 FCN from ResNet-18',
    'fcn-d8_acresnet18_shapes-ft': 'd8 FCN from ACResNet-18',
    # the starting-point study: START -> fine-tuned backbone
    'retinanet_acresnet18-add-g0_fpn_shapes-ft': "plain -> ACB 'bn', gamma 0",
    'retinanet_acresnet18-add-g1-3_fpn_shapes-ft': "plain -> ACB 'bn', gamma 1/3",
    'retinanet_acresnet18-add-g1-3-s2-4_fpn_shapes-ft':
        "plain -> ACB 'bn', gamma 1/3, stages 2-4",
    'retinanet_acresnet18-online-add-g0_fpn_shapes-ft':
        "plain -> ACB 'online', scale 0",
    'retinanet_acresnet18-online-add-g1-3_fpn_shapes-ft':
        "plain -> ACB 'online', scale 1/3",
    'retinanet_fcnresnet18-fused-acb_fpn_shapes-ft': 'ACB fused -> plain',
    'fcn-d8_acresnet18-add-g0_shapes-ft': "d8 FCN, plain -> ACB 'bn', gamma 0",
    'fcn-d8_acresnet18-add-g1-3_shapes-ft':
        "d8 FCN, plain -> ACB 'bn', gamma 1/3",
    'fcn-d8_acresnet18-online-add-g0_shapes-ft':
        "d8 FCN, plain -> ACB 'online', scale 0",
    'fcn-d8_fcnresnet18-fused-acb_shapes-ft': 'd8 FCN, ACB fused -> plain',
    # real images: the NEON tree crowns (configs/trees)
    'retinanet_fcnresnet18_fpn_trees': 'plain ResNet-18',
    'retinanet_acresnet18_fpn_trees': "ACResNet-18 'bn'",
    'retinanet_fcnresnet18_fpn_trees-ft': 'plain -> plain',
    'retinanet_acresnet18-add-g1-3_fpn_trees-ft':
        "plain -> ACB 'bn', gamma 1/3",
    'retinanet_acresnet18_fpn_trees-ft': "ACB -> ACB 'bn'",
}

#: Shorter names for the rows of the results at a glance, where a study has
#: several differences.
SHORT = {
    'retinanet_acresnet18_fpn_shapes': "'bn'",
    'retinanet_acresnet18-online_fpn_shapes': "'online'",
}

#: Metrics given in percent (two decimals); the others are fractions (three).
PERCENT = ('mIoU', 'mAcc', 'aAcc', 'top1', 'top5')

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


@dataclass
class Context:
    """Where a table is written: ``root`` (the repository) and ``doc`` (the
    Markdown file, relative to ``root``)."""
    root: str
    doc: str

    def load(self, path: str):
        with open(osp.join(self.root, path), encoding='utf-8') as f:
            return json.load(f)

    def link(self, path: str) -> str:
        """``path`` (relative to the root) relative to the doc's folder."""
        anchor = ''
        if '#' in path:
            path, anchor = path.split('#', 1)
            anchor = '#' + anchor
        start = posixpath.dirname(self.doc.replace(osp.sep, '/')) or '.'
        return posixpath.relpath(path, start) + anchor


#: Other names for some configs in one study's tables (``labels=<set>``).
LABEL_SETS = {
    'start': {
        'retinanet_fcnresnet18_fpn_shapes-ft': 'plain -> plain',
        'retinanet_acresnet18_fpn_shapes-ft': "ACB -> ACB 'bn' (the paper's)",
        'fcn-d8_fcnresnet18_shapes-ft': 'd8 FCN, plain -> plain',
        'fcn-d8_acresnet18_shapes-ft': "d8 FCN, ACB -> ACB 'bn'",
    },
}


def label(name: str, labels: Optional[str] = None) -> str:
    """How a config is named in a table (``labels``: a set of
    :data:`LABEL_SETS` first)."""
    if labels is not None and labels not in LABEL_SETS:
        raise TypeError(f'unknown labels {labels!r} (known: '
                        f'{", ".join(sorted(LABEL_SETS))})')
    names = LABEL_SETS.get(labels, {})
    return names.get(name) or LABELS.get(name, f'`{name}`')


def short(metric: str) -> str:
    return metric.rsplit('/', 1)[-1]


def digits(metric: str) -> int:
    return 2 if short(metric) in PERCENT else 3


def num(value, nd: int = 3, sign: bool = False) -> str:
    """``value`` with ``nd`` decimals (``sign``: always signed); ``-`` for
    None."""
    if value is None:
        return '-'
    return f'{value:+.{nd}f}' if sign else f'{value:.{nd}f}'


def ci(interval, nd: int = 3, sign: bool = True) -> str:
    """``[lo, hi]``, signed for differences, unsigned for means."""
    if not interval:
        return '-'
    return f'[{num(interval[0], nd, sign)}, {num(interval[1], nd, sign)}]'


def sci(value) -> str:
    return f'{value:.1e}'


def seed_range(seeds: Sequence[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f'{seeds[0]}-{seeds[-1]}'
    return ', '.join(str(s) for s in seeds)


def md_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """The table as one string (the package's one table writer)."""
    return '\n'.join(markdown_table(headers, rows))


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
    from ..study.report import paired_difference
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


def deploy_det(ctx: Context, path: str) -> str:
    """A detector's ``deploy_report.json`` as check | value."""
    r = ctx.load(path)
    c, lat, ev = r['check'], r['latency_ms'], r.get('eval', {})
    h, w = lat['input_shape'][-2:]
    rows = [('fused vs trained, max rel err', sci(r['fuse_max_rel_err'])),
            ('ONNX vs torch: images / detections / images that differ',
             f'{c["images"]} / {c["detections"]} / {c["mismatched_images"]}'),
            ('ONNX vs torch: max box err (px) / max score err',
             f'{sci(c["max_box_err_px"])} / {sci(c["max_score_err"])}')]
    for k, name in (('bbox_mAP', 'bbox mAP'), ('bbox_mAP_50', 'bbox mAP@0.5')):
        if ev:
            rows.append((f'{name} torch (fused) / ONNX',
                         f'{num(ev["torch"][k])} / {num(ev["onnx"][k])}'))
    rows += [(f'median latency per image, torch fused / ONNX ({h}x{w}, '
              f'{lat["threads"]} thread{"s" if lat["threads"] > 1 else ""})',
              f'{lat["torch"]:.1f} ms / {lat["onnx"]:.1f} ms'),
             ('custom ops needed',
              ', '.join(r['onnx']['custom_ops']) or 'none')]
    return md_table(['check', 'value'], rows)


def deploy_seg(ctx: Context, *paths: str) -> str:
    """Segmentors' deploy reports, one row each: fused vs trained, ONNX vs
    torch (max rel err, pixels of another class) and mIoU of all three."""
    rows = []
    for path in paths:
        r = ctx.load(path)
        name = osp.basename(osp.dirname(osp.dirname(r['config'])))
        seed = osp.basename(osp.dirname(r['config'])).replace('seed_', '')
        f, o, miou = r['fused'], r['onnx'], r['mIoU']
        sizes = ' and '.join(f'{s[0]}x{s[1]}' for s in o['shapes'])
        rows.append([f'{label(name)} (seed {seed}) [json]({ctx.link(path)})',
                     f'{sci(f["max_rel_err"])} / {f["differing"]} of '
                     f'{f["pixels"]:,}',
                     f'{sci(o["max_rel_err"])} / {o["differing"]} of '
                     f'{o["pixels"]:,} ({sizes})',
                     ' / '.join(f'{miou[k]:.2f}'
                                for k in ('trained', 'fused', 'onnx'))])
    return md_table(['model', 'fused vs trained: max rel err / pixels of '
                     'another class', 'ONNX vs torch: max rel err / pixels '
                     'of another class', f'mIoU trained / fused / ONNX '
                     f'({r["num_images"]} val images)'], rows)


def seg_backends(ctx: Context, path: str) -> str:
    """A segmentor's deploy report with OpenVINO: per runtime/precision
    what OpenVINO compiled, median latency (interleaved), speed-up over
    onnxruntime FP32, per-pixel agreement with torch and mIoU."""
    r = ctx.load(path)
    lat = r['latency_ms']['median']
    ran = {v['name']: v for v in r['openvino']['precisions'].values()}
    rows = []
    for key, name in RUNTIME_LABELS.items():
        if key not in lat:
            continue
        check = ran.get(key) or (r['onnx'] if key == 'onnx' else None)
        agree = '' if check is None else (
            f'{sci(check["max_rel_err"])} / {check["differing"]:,} of '
            f'{check["pixels"]:,}')
        rows.append([name, _compiled(ran.get(key, {}).get('compiled', {})),
                     f'{lat[key]:.1f}', f'{lat["onnx"] / lat[key]:.2f}x',
                     agree, f'{r["mIoU"]["fused" if key == "torch" else key]:.2f}'])
    shape = 'x'.join(map(str, r['latency_ms']['shape']))
    return md_table(['runtime', 'compiled: hint / convolutions',
                     f'median ms ({r["latency_ms"]["inputs"]} images, '
                     f'{shape})', 'vs onnxruntime FP32',
                     'vs torch: max rel err / pixels of another class',
                     f'mIoU ({r["num_images"]} val images)'], rows)


def demo(ctx: Context, path: str) -> str:
    """``make demo``'s ``summary.json``: mAP of the trained, fused and
    end-to-end ONNX detector, and the checks."""
    s = ctx.load(path)
    rows = [('ACResNet-18 RetinaNet, trained', num(s['bbox_mAP']),
             num(s['bbox_mAP_50']), f'{s["params_train"]:,}'),
            ('fused into a stock ResNet-18 detector (torch)',
             num(s['bbox_mAP_fused']), num(s['bbox_mAP_50_fused']),
             f'{s["params_deploy"]:,}'),
            ('end-to-end ONNX (mmdeploy, onnxruntime, decoding + NMS inside)',
             num(s['bbox_mAP_onnx_end2end']),
             num(s['bbox_mAP_50_onnx_end2end']), '')]
    table = md_table(['model', 'bbox mAP', 'mAP@0.5', 'parameters'], rows)
    checks = md_table(['check', 'value'], [
        ('fused vs unfused, max rel err', sci(s['fuse_max_rel_err'])),
        ('tensor-mode ONNX vs torch, max rel err', sci(s['onnx_max_rel_err'])),
        ('end-to-end ONNX vs torch, max box err (px)',
         sci(s['onnx_end2end_max_box_err_px'])),
        ('median latency per image, torch fused / ONNX',
         f'{s["latency_ms_torch_fused"]:.1f} ms / '
         f'{s["latency_ms_onnx_end2end"]:.1f} ms'),
        ('training / whole demo', f'{s["train_seconds"]:.0f} s / '
         f'{s["seconds"]:.0f} s')])
    return table + '\n\n' + checks


def benchmark_inference(ctx: Context, path: str) -> str:
    """``benchmark.json``'s inference rows (median, IQR, ratio)."""
    b = ctx.load(path)
    return md_table(
        ['model', 'variant', 'input', 'median ms', 'IQR ms',
         'ratio to ResNet-50'],
        [(r['model'], r['variant'], f'{r["size"][0]}x{r["size"][1]}',
          f'{r["median"] * 1e3:.1f}',
          f'{r["q1"] * 1e3:.1f}-{r["q3"] * 1e3:.1f}', f'{r["ratio"]:.3f}')
         for r in b['inference']])


def benchmark_train(ctx: Context, path: str) -> str:
    """``benchmark.json``'s training-step rows (time and peak memory)."""
    b = ctx.load(path)
    return md_table(
        ['train step (backbone fwd+bwd, batch 2)', 'input', 'median ms',
         'ratio', 'peak mem MB', 'mem ratio'],
        [(r['variant'], f'{r["size"][0]}x{r["size"][1]}',
          f'{r["median"] * 1e3:.1f}', f'{r["ratio"]:.3f}',
          f'{r["peak_mem_mb"]:.0f}', f'{r["mem_ratio"]:.3f}')
         for r in b['train']])


def benchmark_complexity(ctx: Context, path: str) -> str:
    """``benchmark.json``'s parameters and FLOPs."""
    b = ctx.load(path)
    return md_table(['backbone', 'params', 'GFLOPs @224'],
                    [(r['variant'], f'{r["params"]:,}',
                      f'{r["gflops_224"]:.2f}') for r in b['complexity']])


def benchmark_fusion(ctx: Context, path: str) -> str:
    """``benchmark.json``'s fusion checks and ``tools/fuse.py`` timing."""
    b = ctx.load(path)
    return md_table(['fusion check', 'value'],
                    [(k, f'{v:.3g}') for k, v in b['fusion'].items()]
                    + [(f'tools/fuse.py R50 RetinaNet {k}', f'{v:.3g}')
                       for k, v in b.get('fuse_tool', {}).items()])


def benchmark_deploy(ctx: Context, path: str) -> str:
    """``benchmark.json``'s ``deploy`` rows: torch fused vs end-to-end ONNX."""
    b = ctx.load(path)
    return md_table(
        ['end-to-end deploy (per image, median)', 'input', 'weights',
         'torch fused ms', 'ONNX (onnxruntime) ms', 'ONNX / torch'],
        [(r['model'], f'{r["input"][0]}x{r["input"][1]}', r['weights'],
          f'{r["torch_ms"]:.1f}', f'{r["onnx_ms"]:.1f}', f'{r["ratio"]:.2f}')
         for r in b['deploy']])


#: Runtime/precision names of a backend study, in table order.
RUNTIME_LABELS = dict(torch='torch', onnx='onnxruntime FP32',
                      onnx_int8='onnxruntime INT8',
                      openvino_fp32='OpenVINO FP32', openvino_bf16='OpenVINO BF16',
                      openvino_int8='OpenVINO INT8')


def backend_study(ctx: Context, path: str) -> str:
    """A ``backend_study.json``: per group and runtime/precision the mean
    bbox mAP, the drop against torch with its interval, the median latency
    and the median speed-up over onnxruntime FP32."""
    data = ctx.load(path)
    rows = []
    for s in data['summary']:
        rows.append([label(s['name']), RUNTIME_LABELS.get(s['runtime'],
                                                          s['runtime']),
                     s['n'], num(s.get('bbox_mAP_mean')),
                     '' if s['runtime'] == 'torch' else
                     f'{num(s.get("drop_mean"), 4, True)} '
                     f'{ci(s.get("drop_ci95"), 4)}',
                     num(s.get('latency_ms_median'), 1),
                     num(s.get('speedup_median'), 2)])
    return md_table(['detector', 'runtime', 'n', 'bbox mAP (mean)',
                     'drop vs torch [95% CI]', 'latency ms (median)',
                     'speed-up over onnxruntime FP32'], rows)


def backend_diffs(ctx: Context, path: str) -> str:
    """A ``backend_study.json``'s ``differences``: per runtime/precision a
    config's drop against torch minus the baseline config's, paired by
    seed, with its interval and the per-seed values."""
    rows = []
    for d in ctx.load(path).get('differences', []):
        rows.append([f'{label(d["name"])} - {label(d["baseline"])}',
                     RUNTIME_LABELS.get(d['runtime'], d['runtime']), d['n'],
                     num(d['mean'], 4, True), ci(d['ci95'], 4),
                     ', '.join(num(v, 4, True) for v in d['per_seed']) +
                     f' (seeds {seed_range(d["seeds"])})'])
    return md_table(['drop difference, paired by seed', 'runtime', 'n',
                     'mean', '95% CI', 'per seed'], rows)


def _compiled(info: Dict) -> str:
    """``hint / convolutions`` of what OpenVINO compiled."""
    convs = ', '.join(f'{n} {p}' for p, n in
                      info.get('convolutions', {}).items())
    return f'{info.get("hint", "")} / {convs}' if info else ''


def backend_latency(ctx: Context, path: str) -> str:
    """A deploy report's runtimes/precisions: median latency
    (``latency_ms``), speed-up over onnxruntime FP32, what OpenVINO compiled
    and, with ``eval``, the bbox mAP and its drop against torch."""
    r = ctx.load(path)
    lat, ev = r['latency_ms'], r.get('eval', {})
    ran = {f'openvino_{p}': v.get('compiled', {})
           for p, v in r.get('openvino', {}).get('precisions', {}).items()}
    rows = []
    for key, name in RUNTIME_LABELS.items():
        if not isinstance(lat.get(key), (int, float)):
            continue
        row = [name, _compiled(ran.get(key, {})), f'{lat[key]:.1f}',
               f'{lat["onnx"] / lat[key]:.2f}x' if lat.get('onnx') else '']
        if ev:
            m = ev.get(key, {}).get('bbox_mAP')
            drop = (None if key == 'torch' or m is None else
                    ev['torch']['bbox_mAP'] - m)
            row += [num(m), '' if drop is None else num(drop, 3, True)]
        rows.append(row)
    headers = ['runtime', 'compiled: hint / convolutions',
               f'median ms ({lat.get("images", "?")} images)',
               'vs onnxruntime FP32']
    headers += ['bbox mAP', 'drop vs torch'] if ev else []
    return md_table(headers, rows)


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


#: The benchmark's model names, as the costs table gives them.
BENCH_MODELS = {'backbone': 'ResNet-50 backbone',
                'RetinaNet': 'RetinaNet R-50'}


def _models(rows: List[Dict]) -> List[str]:
    return list(dict.fromkeys(r['model'] for r in rows))


def _sizes(rows: List[Dict]) -> str:
    """``512x512 and 800x1333``: the distinct input sizes of benchmark
    rows, in order."""
    sizes = []
    for r in rows:
        size = f'{r["size"][0]}x{r["size"][1]}'
        if size not in sizes:
            sizes.append(size)
    return ' and '.join(sizes)


def costs(ctx: Context, benchmark: str, int8: str,
          backends: Optional[str] = None) -> str:
    """What ACB costs, each figure beside its setting (model, input,
    weights, threads, CPU): training step time and memory per mode, fused
    inference (from the benchmark), the bbox mAP that INT8 costs (an INT8
    study) and, with ``backends`` (a ``backend_study.json``), OpenVINO's
    bbox mAP drop per precision. Latencies per runtime and CPU are
    :func:`speed`'s."""
    b, q = ctx.load(benchmark), ctx.load(int8)
    train = {r['variant']: r for r in b['train']}
    fused = [r for r in b['inference'] if r['variant'] == 'acresnet_fused']
    cx = {r['variant']: r for r in b['complexity']}
    machine = b.get('device_name', b.get('device', 'not recorded')) + (
        '' if b.get('cpu') else ' (CPU model not recorded)')
    size = _sizes(b['train'])
    step = (f'ResNet-50 backbone, forward + backward of batch 2 at {size}, '
            f'random weights; {machine}')
    rows = [("training step, 'bn' mode (ACNet)",
             f'{train["acresnet"]["ratio"]:.2f}x time, '
             f'{train["acresnet"]["mem_ratio"]:.2f}x peak memory of ResNet-50',
             step),
            ("training step, 'online' mode",
             f'{train["acresnet_online"]["ratio"]:.2f}x time, '
             f'{train["acresnet_online"]["mem_ratio"]:.2f}x peak memory',
             step),
            ('inference after fusion',
             f'{min(r["ratio"] for r in fused):.3f}-'
             f'{max(r["ratio"] for r in fused):.3f}x the time of ResNet-50 '
             f'(it is a stock ResNet: '
             f'{cx["acresnet_fused"]["params"] / 1e6:.1f} M parameters, '
             f'{cx["acresnet_fused"]["gflops_224"]:.2f} GFLOPs at 224)',
             f'{" and ".join(BENCH_MODELS.get(m, m) for m in _models(fused))}'
             f', batch 1 at {_sizes(fused)}, random weights; {machine}')]
    drops = [s['drop_mean'] for s in q['summary']]
    rows.append(('INT8 vs FP32 ONNX (onnxruntime)',
                 f'bbox mAP {_span(drops)} lower' if min(drops) >= 0 else
                 f'bbox mAP drop {_span(drops)} (negative: above FP32)',
                 f'{_detectors(q["summary"])}, the whole val set'))
    if backends:
        ov = [s for s in ctx.load(backends)['summary']
              if s['runtime'] in ('openvino_bf16', 'openvino_int8')]
        if ov:
            mean = max(abs(s['drop_mean']) for s in ov)
            bound = max(abs(v) for s in ov for v in s['drop_ci95'])
            rows.append(('OpenVINO BF16 and INT8 vs torch',
                         f'bbox mAP within {mean:.4f} of torch on average, '
                         f'every 95% interval inside +-{bound:.4f}',
                         f'{_detectors(ov)}, the whole val set'))
    return md_table(['cost', 'measured', 'setting'], rows)


def _span(values: Sequence[float], nd: int = 3) -> str:
    """``0.001-0.002`` (``-0.001 to 0.002`` across 0; one value where
    they round alike): the range of ``values``."""
    lo, hi = f'{min(values):.{nd}f}', f'{max(values):.{nd}f}'
    return lo if lo == hi else f'{lo}{" to " if min(values) < 0 else "-"}{hi}'


def _detectors(summary: Sequence[Dict]) -> str:
    """``RetinaNet from ResNet-18 and from ACResNet-18 'bn', 5 trained
    each``: the groups of a study summary."""
    names = list(dict.fromkeys(s['name'] for s in summary))
    counts = sorted({s['n'] for s in summary})
    return (f'RetinaNet {" and ".join(label(n) for n in names)}, '
            f'{"/".join(map(str, counts))} trained detectors each (one per '
            'seed)')


def zoo(ctx: Context, *paths: str, labels: Optional[str] = None) -> str:
    """A model zoo in mmdet's shape, one row per config of every study
    JSON: model, config (linked), schedule, bbox mAP (mean +- std over the
    seeds, and mAP@0.5), seeds, training seconds on the CPU and the JSON
    with every run. No checkpoint column: none is published."""
    rows = []
    for path in paths:
        data = ctx.load(path)
        first = {}
        for r in data['runs']:
            first.setdefault(r['config'], r)
        for s in data['summary']:
            run = first.get(s['config'], {})
            sched = run.get('schedule') or {}
            config = run.get('config_path')
            name = f'`{s["config"]}.py`'
            m = short(s.get('metric', 'coco/bbox_mAP'))
            rows.append([
                label(s['config'], labels),
                f'[{name}]({ctx.link(config)})' if config else name,
                f'{sched["length"]} {sched["unit"]}s' if sched else '-',
                f'{num(s[m + "_mean"])} +- {num(s[m + "_std"])}',
                num(s.get(m + '_50_mean')),
                f'{s["n"]} ({seed_range(s["seeds"])})',
                num(s.get('train_seconds_mean'), 0),
                f'[{posixpath.basename(path)}]({ctx.link(path)})'])
    return md_table(['model', 'config', 'schedule', 'bbox mAP (mean +- std)',
                     'mAP@0.5', 'seeds', 'train s (CPU)', 'runs (JSON)'],
                    rows)


#: Short names of the detectors in deploy reports, by config file stem.
DETECTORS = {
    'retinanet_acresnet50_fpn_1x_coco': 'RetinaNet ACResNet-50 (COCO config)',
    'demo_config': "the demo's RetinaNet ACResNet-18",
}


def cpu_label(cpu: Dict) -> str:
    """``Intel Xeon: AMX, AVX-512, BF16, VNNI, AVX2`` from a report's
    ``cpu`` record (``not recorded`` without one)."""
    if not cpu:
        return 'not recorded'
    name = ' '.join(w for w in cpu.get('model', 'CPU').replace(
        '(R)', '').split() if w != 'Processor')
    flags = cpu.get('flags', {})
    has = [f for f, on in (
        ('AMX', cpu.get('AMX')),
        ('AVX-512', cpu.get('AVX512', flags.get('avx512f'))),
        ('BF16', cpu.get('BF16')), ('VNNI', cpu.get('VNNI')),
        ('AVX2', cpu.get('AVX2'))) if on]
    if has == ['AVX2']:
        return f'{name}: AVX2 only (no AVX-512, AMX or BF16)'
    return f'{name}: {", ".join(has)}' if has else name


def speed(ctx: Context, *paths: str) -> str:
    """Latency per runtime and precision, one row per deploy report (the
    ``latency_ms`` of ``tools/deploy.py`` / ``tools/backend_study.py
    large``), each beside its CPU, detector, input size, weights and
    threads: onnxruntime FP32 in ms, the others as a speed-up over it in the
    same run. A precision the CPU does not run natively was not run."""
    rows = []
    for path in paths:
        r = ctx.load(path)
        lat = r['latency_ms']
        cpu = r.get('cpu') or r.get('openvino', {}).get('cpu', {})
        stem = osp.splitext(osp.basename(r.get('config', '')))[0]
        random = 'random weights' in r.get('model', '') or osp.basename(
            str(r.get('checkpoint', ''))) == 'random.pth'
        h, w = lat['input_shape'][2:]
        row = [cpu_label(cpu), DETECTORS.get(stem, f'`{stem}`') + ', fused',
               f'{h}x{w}', 'random' if random else 'trained',
               str(lat.get('threads', '?')), f'{_ms(lat["onnx"])} ms']
        for key in ('onnx_int8', 'openvino_fp32', 'openvino_bf16',
                    'openvino_int8', 'torch'):
            if isinstance(lat.get(key), (int, float)):
                row.append(f'{lat["onnx"] / lat[key]:.2f}x')
            elif key == 'openvino_bf16' and cpu.get('BF16') is False:
                row.append('not run (no BF16)')
            else:
                row.append('-')
        rows.append(row)
    return md_table(['CPU', 'detector', 'input', 'weights', 'threads',
                     'onnxruntime FP32', 'onnxruntime INT8', 'OpenVINO FP32',
                     'OpenVINO BF16', 'OpenVINO INT8', 'torch'], rows)


def _ms(value: float) -> str:
    return f'{value:.0f}' if value >= 100 else f'{value:.1f}'


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


def _rp(whole: Dict, thr: float) -> str:
    """``recall / precision`` at IoU 0.4 of a score row at ``thr``."""
    for r in whole['recall_precision']:
        if abs(r['score_thr'] - thr) < 1e-9:
            return f'{r["recall"]:.3f} / {r["precision"]:.3f}'
    return '-'


def _model_name(row: Dict) -> str:
    """A speed / accuracy row's detector without its runtime suffix."""
    name, rt = row['detector'], row.get('runtime', '')
    for suffix in (f', {rt}', f' [{rt}]'):
        if rt and name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def whole_image_accuracy(ctx: Context, path: str, score_thr: str = '0.3'
                         ) -> str:
    """``whole_image.json``'s accuracy: per detector its bbox mAP, mAP@0.5
    and DeepForest's recall / precision at IoU 0.4 (at ``score_thr``) on the
    held-out image's val tiles (one tile at a time) and over the whole image
    (tiled, at each overlap)."""
    data = ctx.load(path)['accuracy']
    thr = float(score_thr)
    rows = []
    for r in data['rows']:
        name = f'{_model_name(r)}, {r.get("runtime", "")}'.rstrip(', ')
        t = r['tiles']
        rows.append([name, f'{t["images"]} val tiles of {t["boxes"]} boxes '
                     f'(+{t["ignored"]} cut, ignored)', num(t['bbox_mAP']),
                     num(t['bbox_mAP_50']), _rp(t, thr), t['detections']])
        for w in r['whole']:
            rows.append([name, f'whole image, {w["patches"]} patches of '
                         f'{w["patch"]} px, overlap {w["overlap"]:g} '
                         f'({w["counts"]["cut_dropped"]} cut boxes dropped)',
                         num(w['bbox_mAP']), num(w['bbox_mAP_50']),
                         _rp(w, thr), w['detections']])
    return md_table(['detector', f'scored on {data["image"]}', 'bbox mAP',
                     'mAP@0.5', f'recall / precision (IoU 0.4, score >= '
                     f'{thr:g})', 'detections'], rows)


def _rp_value(score: Dict, metric: str, thr: float) -> Optional[float]:
    """``recall`` or ``precision`` at IoU 0.4 of a score row at ``thr``."""
    for r in score['recall_precision']:
        if abs(r['score_thr'] - thr) < 1e-9:
            return r[metric]
    return None


def recall_precision_pairs(ctx: Context, path: str, score_thr: str = '0.3'
                           ) -> str:
    """An accuracy JSON of a study's detectors (``tools/whole_image_study.py
    accuracy``, labels ``<setting> <config> seed <seed>``): per setting,
    scope (the val tiles, the whole image) and measure, DeepForest's recall
    or precision at IoU 0.4 (score >= ``score_thr``) of the plain and the
    ACB detector over the seeds, and ACB - plain paired by seed."""
    from ..study.report import mean_std, paired_difference
    thr = float(score_thr)
    values, configs = {}, {}
    for r in ctx.load(path)['accuracy']['rows']:
        setting, config, _, seed = r['detector'].split(' ')
        configs.setdefault(setting, [])
        if config not in configs[setting]:
            configs[setting].append(config)
        for scope, score in (('val tiles', r['tiles']),
                             ('whole image', r['whole'][0])):
            for metric in ('recall', 'precision'):
                values.setdefault((setting, config, scope, metric), {})[
                    int(seed)] = _rp_value(score, metric, thr)
    rows = []
    for setting, names in configs.items():
        plain = next(n for n in names if 'fcnresnet' in n)
        acb = next(n for n in names if n != plain)
        for scope in ('val tiles', 'whole image'):
            for metric in ('recall', 'precision'):
                a, b = (values[(setting, n, scope, metric)]
                        for n in (acb, plain))
                d = paired_difference(a, b)
                rows.append([
                    f'{label(acb)} - {label(plain)}', scope, metric,
                    num(mean_std(list(b.values()))[0]),
                    num(mean_std(list(a.values()))[0]), d['n'],
                    num(d['mean'], 3, True), ci(d['ci95']),
                    ', '.join(num(x, 3, True) for x in d['per_seed'])])
    return md_table(['ACB - plain, paired by seed', 'scored on', 'measure '
                     f'(IoU 0.4, score >= {thr:g})', 'plain', 'ACB', 'n',
                     'difference', '95% CI (Student t)', 'per seed'], rows)


def whole_image_speed(ctx: Context, path: str) -> str:
    """``whole_image.json``'s speed: per detector and runtime the seconds
    over the timed image, per megapixel (wall and CPU time), its annotated
    crowns per second, the speed-up over the baseline (DeepForest's
    ``predict_tile``; wall / CPU) and the network's share of the time."""
    data = ctx.load(path)
    s = data['speed']
    rows = []
    for r in s['rows']:
        net = r['profile'].get('network') or None  # 0: not recorded
        cpu = r.get('cpu_s_per_megapixel')
        up = f'{r["speedup_vs_baseline"]:.2f}x'
        if r.get('cpu_speedup_vs_baseline') is not None:
            up += f' / {r["cpu_speedup_vs_baseline"]:.2f}x'
        rows.append([_model_name(r), r.get('runtime', ''),
                     r.get('network_input', ''), r['patches'] or '-',
                     f'{r["seconds"]:.1f}', f'{r["s_per_megapixel"]:.2f}',
                     '-' if cpu is None else f'{cpu:.2f}',
                     f'{r["crowns_per_s"]:.1f}', up,
                     '-' if net is None else f'{net / r["seconds"]:.0%}'])
    return md_table([
        'detector', 'runtime', 'network input per patch', 'patches',
        f'seconds ({s["width"]}x{s["height"]})', 's per megapixel',
        'CPU s per megapixel', f'crowns per s ({s["crowns"]} crowns)',
        f'vs {s["baseline"]} (wall / CPU)', 'network share'], rows)


#: The steps of a tiled run, in order (``whole_image_profile``).
TILED_STEPS = ('read', 'patches', 'preprocess', 'network', 'postprocess',
               'merge', 'total')


def whole_image_profile(ctx: Context, path: str) -> str:
    """``whole_image.json``'s speed rows by step: seconds reading the
    image, cutting patches, pre-processing, in the network (decoding and
    the per-patch NMS of the end-to-end files included), mapping boxes back
    and merging across patches; DeepForest's rows give the network and the
    total; the last column is the machine's 1-minute load average as the
    row's run started."""
    rows = []
    for r in ctx.load(path)['speed']['rows']:
        p = r['profile']
        load = r.get('load_average') or []
        rows.append([f'{_model_name(r)}, {r.get("runtime", "")}'.rstrip(', ')]
                    + ['-' if not p.get(k) and k == 'network' or
                       p.get(k) is None else f'{p[k]:.2f}'
                       for k in TILED_STEPS]
                    + [', '.join(f'{x:.1f}' for x in load) or '-'])
    return md_table(['detector'] + [f'{k} s' for k in TILED_STEPS]
                    + ['load average at start'], rows)


RENDERERS: Dict[str, Callable[..., str]] = {
    f.__name__: f for f in (
        study_summary, study_diffs, study_pairs, int8_study, branches,
        deploy_det, deploy_seg, seg_backends, demo,
        benchmark_inference, benchmark_train, benchmark_complexity,
        benchmark_fusion, benchmark_deploy, backend_study, backend_diffs,
        backend_latency,
        table, glance, costs, speed, zoo, whole_image_accuracy,
        recall_precision_pairs, whole_image_speed, whole_image_profile)
}
