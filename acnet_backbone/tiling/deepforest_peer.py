"""DeepForest's own ``predict_tile`` timed on one image: the peer row of the
whole-image benchmark (:func:`acnet_backbone.tiling.speed.time_deepforest`).

This file runs as a script under the Python of a *separate* virtualenv that
holds ``deepforest`` (never this project's): it imports nothing of
``acnet_backbone`` and writes one JSON file::

    DF_PYTHON -I deepforest_peer.py --image IMG --out OUT.json
        [--patch 400] [--overlap 0.05] [--threads 1] [--repeats 1]
        [--seed 0] [--min-size N]

The detector is DeepForest's ``RetinaNetHub`` (torchvision's RetinaNet on
ResNet-50 FPN) with *random* weights: its release weights come from a model
hub and the ImageNet backbone weights torchvision would load by default
from the internet, neither reachable here, so torchvision's factory is
called with ``weights_backbone=None``; the architecture, the thresholds and
the whole ``predict_tile`` path (image loading, windows, Lightning's predict
loop, the mosaic NMS) are DeepForest's. ``--min-size`` sets torchvision's
resize (by default every 400 px patch is scaled to 800 px before the
network, as DeepForest runs it).
"""
import argparse
import contextlib
import functools
import io
import json
import os
import platform
import time


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--image', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--patch', type=int, default=400)
    p.add_argument('--overlap', type=float, default=0.05)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--repeats', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--min-size', type=int, default=None)
    return p.parse_args(argv)


def _model(args):
    import torch
    import torchvision
    from deepforest.models import retinanet
    factory = torchvision.models.detection.retinanet_resnet50_fpn
    torchvision.models.detection.retinanet_resnet50_fpn = functools.partial(
        factory, weights_backbone=None)
    try:
        torch.manual_seed(args.seed)
        extra = {} if args.min_size is None else dict(
            min_size=args.min_size, max_size=max(args.min_size, 1333))
        net = retinanet.RetinaNetHub(
            backbone_weights=None, num_classes=1, nms_thresh=0.05,
            score_thresh=0.1, label_dict={'Tree': 0}, **extra)
    finally:
        torchvision.models.detection.retinanet_resnet50_fpn = factory
    return net


def main(argv=None) -> int:
    args = _parse(argv)
    import torch
    torch.set_num_threads(args.threads)
    import deepforest
    from deepforest import main as df_main
    net = _model(args)
    model = df_main.deepforest(model=net, config_args=dict(
        label_dict={'Tree': 0}, num_classes=1, workers=0,
        accelerator='cpu', devices=1))
    model.set_labels({'Tree': 0})
    model.create_trainer(enable_progress_bar=False, logger=False)
    net.eval()
    with torch.no_grad():  # warm-up: one patch through the network
        net([torch.rand(3, args.patch, args.patch)])
    # seconds and calls inside the detector's forward; DeepForest's
    # predict_step calls ``model.forward`` directly (no module hooks run),
    # so the bound method is wrapped
    network = [0.0, 0]
    forward = net.forward

    def _timed_forward(*a, **kw):
        t0 = time.perf_counter()
        try:
            return forward(*a, **kw)
        finally:
            network[0] += time.perf_counter() - t0
            network[1] += 1

    net.forward = _timed_forward
    seconds, cpu, n = [], [], None
    for _ in range(args.repeats):
        sink = io.StringIO()  # predict_tile prints its NMS counts
        t0, c0 = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(sink):
            result = model.predict_tile(path=args.image,
                                        patch_size=args.patch,
                                        patch_overlap=args.overlap)
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        n = 0 if result is None else int(len(result))
    net_input = net.transform.min_size[0]
    report = dict(
        deepforest=deepforest.__version__, torch=torch.__version__,
        python=platform.python_version(), threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
        patch=args.patch, overlap=args.overlap, seconds=seconds,
        cpu_seconds=cpu,
        network_seconds=network[0] / max(args.repeats, 1),
        network_calls=network[1] // max(args.repeats, 1),
        detections=n, weights='random (seed %d)' % args.seed,
        network_input=f'patch resized to min side {net_input}, max '
                      f'{net.transform.max_size}')
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
