#!/usr/bin/env python
"""Fuse a trained ACResNet detector into a stock mmdet ResNet detector,
verify it and (optionally) export it to ONNX.

    python tools/fuse.py CONFIG CHECKPOINT --out-dir DIR [--onnx]

Writes DIR/fused.pth, DIR/fused_config.py (runs with stock mmdet, no plugin)
and, with --onnx, DIR/fused.onnx. Nothing is written unless the fused model
matches the trained one within --rtol.
"""
import argparse
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint', help='the trained checkpoint')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--onnx', action='store_true', help='also export '
                        'DIR/fused.onnx and check it in onnxruntime')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333],
                        metavar=('H', 'W'), help='verification input size')
    parser.add_argument('--image', help='verify on this image (through the '
                        "config's test pipeline) instead of random input")
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='largest allowed relative error')
    parser.add_argument('--opset', type=int, help='ONNX opset version')
    parser.add_argument('--force', action='store_true',
                        help='overwrite existing outputs')
    parser.add_argument('--no-analysis', action='store_true',
                        help='skip the parameter/FLOP count')
    parser.add_argument('--json', help='also write the report to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if min(args.shape) < 32:
        print(f'error: --shape {args.shape[0]} {args.shape[1]} is too small '
              '(at least 32 32)', file=sys.stderr)
        return 2
    from mmengine.logging import MMLogger

    from acnet_backbone.deploy.checkpoint import FuseError, fuse_checkpoint
    logger = MMLogger.get_instance('acnet_fuse', log_level='INFO')
    try:
        report = fuse_checkpoint(
            args.config, args.checkpoint, args.out_dir, onnx=args.onnx,
            shape=tuple(args.shape), image=args.image, rtol=args.rtol,
            opset=args.opset, force=args.force,
            analyze=not args.no_analysis, logger=logger)
    except FuseError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'fused vs unfused: max abs err {report["max_abs_err"]:.3g}, '
          f'max rel err {report["max_rel_err"]:.3g} (input '
          f'{tuple(report["input_shape"])})')
    if 'before' in report:
        b, a = report['before'], report['after']
        print(f'parameters {b["params"]:,} -> {a["params"]:,}; '
              f'FLOPs {b["flops"] / 1e9:.2f} G -> {a["flops"] / 1e9:.2f} G')
    for r in report.get('onnx', []):
        print(f'onnxruntime vs torch at {tuple(r["shape"])}: max abs err '
              f'{r["max_abs_err"]:.3g}, max rel err {r["max_rel_err"]:.3g}')
    for path in report['outputs']:
        print(f'wrote {path}')
    print(f'took {report["seconds"]:.1f} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
