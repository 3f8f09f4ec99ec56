"""The whole-image tables (``tools/whole_image_study.py``'s JSON): accuracy
over the val tiles and the whole image, recall / precision paired by seed,
speed and its profile by step."""
from typing import Dict, Optional

from .common import Context, ci, label, md_table, num


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
    from ...study.report import mean_std, paired_difference
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
