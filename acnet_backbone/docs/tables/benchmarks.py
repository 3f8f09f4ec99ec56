"""The benchmark's tables (inference, training step, complexity, fusion,
deploy), what ACB costs, the model zoo and the latency per runtime and
CPU."""
import os.path as osp
import posixpath
from typing import Dict, List, Optional, Sequence

from .common import Context, label, md_table, num, seed_range, short


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
