"""Speed, memory and fusion accuracy of ACResNet-50 against mmdet's
ResNet-50, measured side by side (interleaved repeats, so machine noise hits
all alike), and the deploy pipeline's latency (``tools/benchmark.py``).

:func:`run_benchmark` measures, :func:`markdown` formats the tables,
:func:`write_results` writes ``benchmark.json``, ``benchmark.md`` and
``benchmark.png``.
"""
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch

from .errors import InputError
from .staging import write_json, write_text
from .tables import markdown_table

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def sync(device):
    """Wait for the device's queued work (CUDA)."""
    if device == 'cuda':
        torch.cuda.synchronize()


def make_backbone(kind, device, depth=50):
    """mmdet's ResNet (``'resnet'``) or an ACResNet (``'acresnet'``,
    ``'acresnet_online'``, ``'acresnet_fused'``) of ``depth``."""
    from mmdet.models.backbones import ResNet

    from .backbones import ACResNet
    if kind == 'resnet':
        net = ResNet(depth)
    elif kind == 'acresnet_online':
        net = ACResNet(depth, acb_mode='online', acb_gamma_init=1.0)
    else:
        net = ACResNet(depth, acb_gamma_init=1.0)
    if kind == 'acresnet_fused':
        net.eval()
        net.switch_to_deploy()
    return net.to(device)


def ready(net, training):
    """Set train/eval mode and return the module. mmdet's ResNet.train()
    returns None, so `.eval()`/`.train()` cannot be chained on it."""
    net.train(training)
    return net


def make_detector(kind, device):
    from mmengine.config import Config

    from .deploy.tasks.detection import build_detector
    name = ('retinanet_fcnresnet50_fpn_1x_coco.py' if kind == 'resnet' else
            'retinanet_acresnet50_fpn_1x_coco.py')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'acnet', name))
    if kind == 'acresnet_fused':
        cfg.model.backbone.deploy = True
    return build_detector(cfg).to(device)


def timed(fn, device):
    """Seconds ``fn()`` takes on ``device``."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def interleaved(cases, repeats, warmup, device):
    """Run every case once per round, rounds repeated: returns the times."""
    times = {name: [] for name in cases}
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn, device))
    return times


def summarize(samples):
    """Median, quartiles and count of timings."""
    q = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [
        samples[0]] * 3
    return dict(median=statistics.median(samples), q1=q[0], q3=q[2],
                n=len(samples))


def bench_inference(device, sizes, kinds, repeats):
    """Interleaved inference times of the backbones and RetinaNets of
    ``kinds`` at ``sizes``, with their ratio to mmdet's ResNet."""
    rows = []
    for what, factory in (('backbone', make_backbone),
                          ('RetinaNet', make_detector)):
        models = {k: ready(factory(k, device), False) for k in kinds}
        for size in sizes:
            x = torch.randn(1, 3, *size, device=device)

            def runner(model):
                def run():
                    with torch.no_grad():
                        if what == 'backbone':
                            model(x)
                        else:
                            model(x, mode='tensor')
                return run
            times = interleaved({k: runner(m) for k, m in models.items()},
                                repeats, 1, device)
            base = statistics.median(times['resnet'])
            for k in kinds:
                s = summarize(times[k])
                rows.append(dict(model=what, variant=k, size=list(size),
                                 ratio=s['median'] / base,
                                 fps=1 / s['median'], **s))
        del models
    return rows


def train_step_fn(net, x):
    """One training step (forward, a scalar loss, backward) as a function."""
    def step():
        net.zero_grad(set_to_none=True)
        sum(o.float().mean() for o in net(x)).backward()
    return step


def bench_train(device, kinds, repeats, size):
    """Interleaved training-step times and peak memory of the backbones of
    ``kinds`` (batch 2 at ``size``), with their ratios to mmdet's ResNet."""
    nets = {k: ready(make_backbone(k, device), True) for k in kinds}
    x = torch.randn(2, 3, *size, device=device)
    times = interleaved({k: train_step_fn(n, x) for k, n in nets.items()},
                        repeats, 1, device)
    base = statistics.median(times['resnet'])
    rows = []
    for k in kinds:
        s = summarize(times[k])
        rows.append(dict(variant=k, size=list(size), ratio=s['median'] / base,
                         peak_mem_mb=peak_train_memory(device, k, size), **s))
    base_mem = rows[0]['peak_mem_mb']
    for r in rows:
        r['mem_ratio'] = r['peak_mem_mb'] / base_mem
    return rows


def peak_train_memory(device, kind, size):
    """Peak memory of one training step above what was allocated before it
    (weights, input). GPU: torch's allocator peak. CPU: the allocator's own
    record (torch.profiler with profile_memory: every allocation and free
    in time order, summed), measured in a fresh process so that its console
    noise and caches stay out of the benchmark."""
    if device == 'cuda':
        net = ready(make_backbone(kind, 'cuda'), True)
        x = torch.randn(2, 3, *size, device='cuda')
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        train_step_fn(net, x)()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    out = subprocess.run(
        [sys.executable, '-c', 'from acnet_backbone.benchmark import '
         f'train_mem_child; train_mem_child("{kind}:{size[0]}:{size[1]}")'],
        capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f'memory measurement of {kind} failed:\n'
                           + out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def train_mem_child(spec: str) -> None:
    """Print the CPU peak memory (MB) of one training step of
    ``'kind:H:W'`` (run in a fresh process by :func:`peak_train_memory`)."""
    from torch.profiler import ProfilerActivity, profile
    kind, h, w = spec.split(':')
    net = ready(make_backbone(kind, 'cpu'), True)
    x = torch.randn(2, 3, int(h), int(w))
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        train_step_fn(net, x)()
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]'), key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    print(peak / 2**20)  # the parent process reads it


def complexity_rows(device):
    """Parameters and GFLOPs at 224x224 of every backbone variant."""
    from mmengine.analysis import FlopAnalyzer
    rows = []
    x = torch.randn(1, 3, 224, 224, device=device)
    for k in ('resnet', 'acresnet', 'acresnet_online', 'acresnet_fused'):
        net = ready(make_backbone(k, device), False)
        fa = FlopAnalyzer(net, (x,))
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        rows.append(dict(variant=k, params=sum(p.numel()
                                              for p in net.parameters()),
                         gflops_224=fa.total() / 1e9))
    return rows


def fusion_error(device, size):
    """Fused vs unfused error of a BN-randomised ACResNet-50 in float32 (and
    bfloat16 where it runs) and the time ``switch_to_deploy`` takes."""
    from .testing import randomize_bn, rel_err
    out = {}
    net = ready(randomize_bn(make_backbone('acresnet', 'cpu')), False)
    net.to(device)
    x = torch.randn(1, 3, *size, device=device)
    with torch.no_grad():
        ref = net(x)
        t0 = time.perf_counter()
        net.switch_to_deploy()
        out['switch_to_deploy_s'] = time.perf_counter() - t0
        out['fp32_max_rel_err'] = max(rel_err(a, b) for a, b in
                                      zip(net(x), ref))
        if device == 'cuda' or torch.backends.mkldnn.is_available():
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                got = net(x)
            out['bf16_max_rel_err'] = max(rel_err(a.float(), b) for a, b in
                                          zip(got, ref))
    return out


def fuse_tool_time():
    """Wall time of the fuse tool's work (build, strict load, fuse, verify at
    800x1333, ONNX export and onnxruntime check) on a R50 RetinaNet checkpoint
    whose BNs are randomised (fresh BNs would make the fusion trivial), with
    and without the parameter/FLOP analysis."""
    from mmengine.config import Config

    from .deploy.checkpoint import fuse_checkpoint
    from .deploy.tasks.detection import build_detector
    from .testing import randomize_bn
    config = osp.join(ROOT, 'configs', 'acnet',
                      'retinanet_acresnet50_fpn_1x_coco.py')
    model = randomize_bn(build_detector(Config.fromfile(config)))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = osp.join(tmp, 'r50.pth')
        torch.save(dict(state_dict=model.state_dict()), ckpt)
        del model
        for analyze in (True, False):
            t0 = time.perf_counter()
            report = fuse_checkpoint(config, ckpt, osp.join(tmp, 'fused'),
                                     onnx=True, analyze=analyze, force=True)
            key = 'seconds' if analyze else 'seconds_no_analysis'
            out[key] = time.perf_counter() - t0
    out['max_rel_err'] = report['max_rel_err']
    out['onnx_max_rel_err'] = max(r['max_rel_err'] for r in report['onnx'])
    return out


def deploy_latency(repeats):
    """Per-image latency of the fused detector in torch against the
    end-to-end ONNX file (decoding and NMS inside) in onnxruntime, measured
    by tools/deploy.py's check loop (torch and onnxruntime alternate on the
    same preprocessed input): the shapes RetinaNet (the demo's trained
    checkpoint when present) and a R50 RetinaNet at 800x1333 (randomised
    BNs: no COCO training here)."""
    import numpy as np
    from mmengine.config import Config
    from PIL import Image

    from .deploy.end2end import deploy_checkpoint
    from .deploy.tasks.detection import build_detector
    from .testing import randomize_bn
    shapes = osp.join(ROOT, 'configs', 'shapes',
                      'retinanet_acresnet18_fpn_shapes.py')
    demo_ckpt = osp.join(ROOT, 'work_dirs', 'demo', 'iter_1500.pth')
    cases = [('shapes RetinaNet ACResNet-18', shapes, (128, 128)),
             ('RetinaNet ACResNet-50', osp.join(
                 ROOT, 'configs', 'acnet', 'retinanet_acresnet50_fpn_1x_coco.py'),
              (800, 1333))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, config, (h, w) in cases:
            ckpt = demo_ckpt if config == shapes and osp.isfile(
                demo_ckpt) else None
            if ckpt is None:
                model = randomize_bn(build_detector(Config.fromfile(config)))
                ckpt = osp.join(tmp, 'model.pth')
                torch.save(dict(state_dict=model.state_dict()), ckpt)
                del model
            img = osp.join(tmp, f'{h}x{w}.png')
            Image.fromarray(np.random.default_rng(0).integers(
                0, 255, (h, w, 3), dtype=np.uint8)).save(img)
            report = deploy_checkpoint(
                config, ckpt, osp.join(tmp, 'out'), force=True,
                images=[img] * (repeats + 1))
            lat = report['latency_ms']
            rows.append(dict(model=name, input=lat['input_shape'][-2:],
                             weights='trained' if ckpt == demo_ckpt else
                             'random', torch_ms=lat['torch'],
                             onnx_ms=lat['onnx'],
                             ratio=lat['onnx'] / lat['torch']))
    return rows


def fmt_table(headers, rows) -> str:
    """A markdown table (:func:`acnet_backbone.tables.markdown_table`)."""
    return '\n'.join(markdown_table(headers, rows))


def plot(results, path):
    """Bar chart of every ratio to mmdet's ResNet-50, written atomically."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from .staging import save_figure
    labels, values = [], []
    for r in results['inference']:
        if r['variant'] != 'resnet':
            labels.append(f'{r["model"]} {r["variant"]}\n'
                          f'{r["size"][0]}x{r["size"][1]}')
            values.append(r['ratio'])
    for r in results['train']:
        if r['variant'] != 'resnet':
            labels.append(f'train step\n{r["variant"]}')
            values.append(r['ratio'])
            labels.append(f'train memory\n{r["variant"]}')
            values.append(r['mem_ratio'])
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.9), 4))
    ax.bar(range(len(values)), values, color='tab:blue')
    ax.axhline(1.0, color='k', lw=0.8)
    ax.set_xticks(range(len(values)), labels, rotation=60, ha='right',
                  fontsize=7)
    ax.set_ylabel('ratio to mmdet ResNet-50')
    ax.set_title(f'ACResNet-50 vs ResNet-50 on {results["device_name"]}')
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def deploy_table(rows) -> str:
    """The end-to-end deploy latency rows as a markdown table."""
    return fmt_table(
        ['end-to-end deploy (per image, median)', 'input', 'weights',
         'torch fused ms', 'ONNX (onnxruntime) ms', 'ONNX / torch'],
        [(r['model'], f'{r["input"][0]}x{r["input"][1]}', r['weights'],
          f'{r["torch_ms"]:.1f}', f'{r["onnx_ms"]:.1f}', f'{r["ratio"]:.2f}')
         for r in rows])


def markdown(results: Dict) -> str:
    """Every table of a :func:`run_benchmark` result, as
    ``benchmark.md`` holds them."""
    return '\n'.join([
        f'Device: {results["device_name"]}, torch {results["torch"]}, '
        f'{results["repeats"]} interleaved repeats (median, IQR in '
        'brackets)', '',
        fmt_table(['model', 'variant', 'input', 'median ms', 'IQR ms',
                   'ratio to ResNet-50'],
                  [(r['model'], r['variant'], f'{r["size"][0]}x'
                    f'{r["size"][1]}', f'{r["median"] * 1e3:.1f}',
                    f'{r["q1"] * 1e3:.1f}-{r["q3"] * 1e3:.1f}',
                    f'{r["ratio"]:.3f}') for r in results['inference']]),
        '',
        fmt_table(['train step (backbone fwd+bwd, batch 2)', 'input',
                   'median ms', 'ratio', 'peak mem MB', 'mem ratio'],
                  [(r['variant'], f'{r["size"][0]}x{r["size"][1]}',
                    f'{r["median"] * 1e3:.1f}', f'{r["ratio"]:.3f}',
                    f'{r["peak_mem_mb"]:.0f}', f'{r["mem_ratio"]:.3f}')
                   for r in results['train']]),
        '',
        fmt_table(['backbone', 'params', 'GFLOPs @224'],
                  [(r['variant'], f'{r["params"]:,}',
                    f'{r["gflops_224"]:.2f}')
                   for r in results['complexity']]),
        '',
        fmt_table(['fusion check', 'value'],
                  [(k, f'{v:.3g}') for k, v in results['fusion'].items()]
                  + [(f'tools/fuse.py R50 RetinaNet {k}', f'{v:.3g}')
                     for k, v in results.get('fuse_tool', {}).items()]),
        '', deploy_table(results['deploy'])])


def device_name(device: str) -> str:
    """The device in words (GPU name, or the CPU model and its torch
    threads)."""
    if device == 'cuda':
        return torch.cuda.get_device_name()
    from .deploy.backends.cpu import cpu_features
    model = (cpu_features()['model'] or
             f'CPU {platform.processor() or platform.machine()}')
    return f'{model}, {torch.get_num_threads()} threads'


def run_benchmark(device: str = 'cpu', quick: bool = False,
                  repeats: Optional[int] = None, fuse_tool: bool = True,
                  only_deploy: bool = False) -> Dict:
    """Measure ACResNet-50 against mmdet's ResNet-50 side by side.

    Args:
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to 'cpu'.
        quick (bool): fewer repeats and sizes. Defaults to False.
        repeats (int, optional): timed repeats per case; None: 3 quick, 10
            otherwise.
        fuse_tool (bool): also time the fuse pipeline on a R50 RetinaNet.
            Defaults to True.
        only_deploy (bool): only the torch vs end-to-end ONNX latency.
            Defaults to False.

    Returns:
        dict: the results (``benchmark.json``); :func:`markdown` formats
        them.

    Raises:
        InputError: ``device='cuda'`` without a CUDA device.
    """
    if device == 'cuda' and not torch.cuda.is_available():
        raise InputError('`device` is cuda but there is no CUDA device')
    torch.manual_seed(0)
    repeats = repeats or (3 if quick else 10)
    results = dict(device=device, device_name=device_name(device),
                   torch=torch.__version__, quick=quick, repeats=repeats)
    if device == 'cpu':  # model and native arithmetic, as deploy reports
        from .deploy.backends.cpu import cpu_features
        results['cpu'] = cpu_features()
    results['deploy'] = deploy_latency(repeats)
    if only_deploy:
        return results
    sizes = [(512, 512)] if quick else [(512, 512), (800, 1333)]
    results['inference'] = bench_inference(
        device, sizes, ['resnet', 'acresnet', 'acresnet_fused'], repeats)
    results['train'] = bench_train(
        device, ['resnet', 'acresnet', 'acresnet_online'], repeats,
        (224, 224) if quick else (512, 512))
    results['complexity'] = complexity_rows(device)
    results['fusion'] = fusion_error(device, (512, 512) if quick else
                                     (800, 1333))
    if fuse_tool:
        results['fuse_tool'] = fuse_tool_time()
    return results


def write_results(results: Dict, out_dir: str) -> List[str]:
    """``benchmark.json``, ``benchmark.md`` and ``benchmark.png`` (or, for an
    ``only_deploy`` result, ``deploy_latency.md``) into ``out_dir``,
    each written atomically; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    if 'inference' not in results:
        path = osp.join(out_dir, 'deploy_latency.md')
        write_text(path, f'Device: {results["device_name"]}\n\n'
                   f'{deploy_table(results["deploy"])}\n')
        return [path]
    paths = [osp.join(out_dir, f'benchmark.{ext}')
             for ext in ('json', 'md', 'png')]
    write_json(paths[0], results)
    write_text(paths[1], markdown(results) + '\n')
    plot(results, paths[2])
    return paths
