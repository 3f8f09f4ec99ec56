"""The deployment tables: a detector's and segmentors' deploy reports,
a segmentor's OpenVINO runtimes, ``make demo``'s summary and the backend
studies (drop against torch, its paired differences, latency per
runtime)."""
import os.path as osp
from typing import Dict

from .common import Context, ci, label, md_table, num, sci, seed_range


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
