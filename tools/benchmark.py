#!/usr/bin/env python
"""Speed, memory and fusion accuracy of ACResNet-50 against mmdet's ResNet-50,
measured side by side (interleaved repeats, so machine noise hits all alike).

    python tools/benchmark.py [--quick] [--device cpu|cuda] [--out-dir DIR]

Writes DIR/benchmark.json, DIR/benchmark.md (the tables printed) and
DIR/benchmark.png (ratios to ResNet-50).
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import warnings
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer repeats and sizes: a few minutes on CPU')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available()
                        else 'cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, help='timed repeats per case')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--skip-fuse-tool', action='store_true')
    parser.add_argument('--only-deploy', action='store_true',
                        help='only the torch vs end-to-end ONNX latency')
    # internal: one training-step memory measurement in a fresh process
    parser.add_argument('--_train-mem', dest='train_mem', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def make_backbone(kind, device, depth=50):
    import acnet_backbone  # noqa: F401
    from mmdet.models.backbones import ResNet

    from acnet_backbone import ACResNet
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

    from acnet_backbone.deploy.checkpoint import build_detector
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    name = ('retinanet_fcnresnet50_fpn_1x_coco.py' if kind == 'resnet' else
            'retinanet_acresnet50_fpn_1x_coco.py')
    cfg = Config.fromfile(osp.join(root, 'configs', 'acnet', name))
    if kind == 'acresnet_fused':
        cfg.model.backbone.deploy = True
    return build_detector(cfg).to(device)


def timed(fn, device):
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
    q = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [
        samples[0]] * 3
    return dict(median=statistics.median(samples), q1=q[0], q3=q[2],
                n=len(samples))


def bench_inference(args, sizes, kinds, repeats):
    rows = []
    for what, factory in (('backbone', make_backbone),
                          ('RetinaNet', make_detector)):
        models = {k: ready(factory(k, args.device), False) for k in kinds}
        for size in sizes:
            x = torch.randn(1, 3, *size, device=args.device)

            def runner(model):
                def run():
                    with torch.no_grad():
                        if what == 'backbone':
                            model(x)
                        else:
                            model(x, mode='tensor')
                return run
            times = interleaved({k: runner(m) for k, m in models.items()},
                                repeats, 1, args.device)
            base = statistics.median(times['resnet'])
            for k in kinds:
                s = summarize(times[k])
                rows.append(dict(model=what, variant=k, size=list(size),
                                 ratio=s['median'] / base,
                                 fps=1 / s['median'], **s))
        del models
    return rows


def train_step_fn(net, x):
    def step():
        net.zero_grad(set_to_none=True)
        sum(o.float().mean() for o in net(x)).backward()
    return step


def bench_train(args, kinds, repeats, size):
    nets = {k: ready(make_backbone(k, args.device), True) for k in kinds}
    x = torch.randn(2, 3, *size, device=args.device)
    times = interleaved({k: train_step_fn(n, x) for k, n in nets.items()},
                        repeats, 1, args.device)
    base = statistics.median(times['resnet'])
    rows = []
    for k in kinds:
        s = summarize(times[k])
        rows.append(dict(variant=k, size=list(size), ratio=s['median'] / base,
                         peak_mem_mb=peak_train_memory(args, k, size), **s))
    base_mem = rows[0]['peak_mem_mb']
    for r in rows:
        r['mem_ratio'] = r['peak_mem_mb'] / base_mem
    return rows


def peak_train_memory(args, kind, size):
    """Peak memory of one training step above what was allocated before it
    (weights, input). GPU: torch's allocator peak. CPU: the allocator's own
    record (torch.profiler with profile_memory: every allocation and free
    in time order, summed), measured in a fresh process so that its console
    noise and caches stay out of the benchmark."""
    if args.device == 'cuda':
        net = ready(make_backbone(kind, 'cuda'), True)
        x = torch.randn(2, 3, *size, device='cuda')
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        train_step_fn(net, x)()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    out = subprocess.run(
        [sys.executable, osp.abspath(__file__), '--_train-mem',
         f'{kind}:{size[0]}:{size[1]}'], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f'memory measurement of {kind} failed:\n'
                           + out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def train_mem_child(spec):
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
    print(peak / 2**20)


def complexity_rows(device):
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
    from acnet_backbone.testing import randomize_bn, rel_err
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


def fuse_tool_time(out_dir):
    """Wall time of the fuse tool's work (build, strict load, fuse, verify at
    800x1333, ONNX export and onnxruntime check) on a R50 RetinaNet checkpoint
    whose BNs are randomised (fresh BNs would make the fusion trivial), with
    and without the parameter/FLOP analysis."""
    from mmengine.config import Config

    from acnet_backbone.deploy.checkpoint import (build_detector,
                                                  fuse_checkpoint)
    from acnet_backbone.testing import randomize_bn
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    config = osp.join(root, 'configs', 'acnet',
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

    from acnet_backbone.deploy.checkpoint import build_detector
    from acnet_backbone.deploy.end2end import deploy_checkpoint
    from acnet_backbone.testing import randomize_bn
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    shapes = osp.join(root, 'configs', 'shapes',
                      'retinanet_acresnet18_fpn_shapes.py')
    demo_ckpt = osp.join(root, 'work_dirs', 'demo', 'iter_1500.pth')
    cases = [('shapes RetinaNet ACResNet-18', shapes, (128, 128)),
             ('RetinaNet ACResNet-50', osp.join(
                 root, 'configs', 'acnet', 'retinanet_acresnet50_fpn_1x_coco.py'),
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


def fmt_table(headers, rows):
    lines = ['| ' + ' | '.join(headers) + ' |',
             '| ' + ' | '.join('---' for _ in headers) + ' |']
    lines += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(lines)


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from acnet_backbone.staging import save_figure
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


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.train_mem:
        train_mem_child(args.train_mem)
        return 0
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda but no CUDA device', file=sys.stderr)
        return 2
    from mmengine.logging import MMLogger

    from acnet_backbone.staging import write_text
    MMLogger.get_instance('acnet_benchmark', log_level='WARNING')
    torch.manual_seed(0)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 10)
    sizes = [(512, 512)] if quick else [(512, 512), (800, 1333)]
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda' else
                   f'CPU {platform.processor() or platform.machine()}, '
                   f'{torch.get_num_threads()} threads')
    print(f'device: {device_name}; repeats {repeats}', flush=True)
    results = dict(device=args.device, device_name=device_name,
                   torch=torch.__version__, quick=quick, repeats=repeats)
    results['deploy'] = deploy_latency(repeats)
    deploy_md = fmt_table(
        ['end-to-end deploy (per image, median)', 'input', 'weights',
         'torch fused ms', 'ONNX (onnxruntime) ms', 'ONNX / torch'],
        [(r['model'], f'{r["input"][0]}x{r["input"][1]}', r['weights'],
          f'{r["torch_ms"]:.1f}', f'{r["onnx_ms"]:.1f}', f'{r["ratio"]:.2f}')
         for r in results['deploy']])
    if args.only_deploy:
        print(deploy_md)
        os.makedirs(args.out_dir, exist_ok=True)
        path = osp.join(args.out_dir, 'deploy_latency.md')
        write_text(path, f'Device: {device_name}\n\n{deploy_md}\n')
        print(f'wrote {path}')
        return 0
    kinds = ['resnet', 'acresnet', 'acresnet_fused']
    results['inference'] = bench_inference(args, sizes, kinds, repeats)
    train_size = (224, 224) if quick else (512, 512)
    results['train'] = bench_train(
        args, ['resnet', 'acresnet', 'acresnet_online'], repeats, train_size)
    results['complexity'] = complexity_rows(args.device)
    results['fusion'] = fusion_error(args.device, (512, 512) if quick else
                                     (800, 1333))
    if not args.skip_fuse_tool:
        results['fuse_tool'] = fuse_tool_time(args.out_dir)

    md = [f'Device: {device_name}, torch {torch.__version__}, '
          f'{repeats} interleaved repeats (median, IQR in brackets)', '',
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
          '', deploy_md]
    text = '\n'.join(md)
    print(text)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, content in (('benchmark.json', json.dumps(results, indent=2)),
                          ('benchmark.md', text + '\n')):
        write_text(osp.join(args.out_dir, name), content)
    plot(results, osp.join(args.out_dir, 'benchmark.png'))
    print(f'wrote {args.out_dir}/benchmark.{{json,md,png}}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
