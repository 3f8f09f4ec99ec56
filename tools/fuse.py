#!/usr/bin/env python
"""Fuse a trained ACB detector (ACResNet, ACNet) or mmseg segmentor into its
stock form, verify it and (optionally) export it to ONNX.

    python tools/fuse.py CONFIG CHECKPOINT --out-dir DIR [--onnx]
        [--shape H W] [--image IMG | --num-images N]

Writes DIR/fused.pth, DIR/fused_config.py (runs with stock mmdet / mmseg,
no plugin; an FCN-32s keeps acnet_backbone.seg for its head) and, with
--onnx, DIR/fused.onnx. Nothing is written unless the fused model matches
the trained one within --rtol.
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

# the package's argument names in messages -> this tool's flags
FLAGS = dict(force='--force', onnx='--onnx', image='--image',
             num_images='--num-images', shape='--shape', rtol='--rtol')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint', help='the trained checkpoint')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--onnx', action='store_true', help='also export '
                        'DIR/fused.onnx (tensor mode, one-stage detectors; '
                        'two-stage ones: tools/deploy.py) and check it in '
                        'onnxruntime')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='verification input size (default 800 1333 for '
                        'a detector, 512 512 for a segmentor)')
    parser.add_argument('--image', help='detectors: verify on this image '
                        "(through the config's test pipeline) instead of "
                        'random input')
    parser.add_argument('--num-images', type=int, default=0,
                        help='segmentors: also verify on the first N test '
                        'images and report their mIoU (trained, fused, ONNX)')
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
    if args.shape and min(args.shape) < 32:
        print(f'error: --shape {args.shape[0]} {args.shape[1]} is too small '
              '(at least 32 32)', file=sys.stderr)
        return 2
    from mmengine.logging import MMLogger

    from acnet_backbone.deploy.checkpoint import fuse_any_checkpoint
    from acnet_backbone.deploy.core import summary_lines
    from acnet_backbone.errors import AcnetError, flag_message
    from acnet_backbone.staging import write_json
    logger = MMLogger.get_instance('acnet_fuse', log_level='INFO')
    try:
        report = fuse_any_checkpoint(
            args.config, args.checkpoint, args.out_dir, onnx=args.onnx,
            shape=tuple(args.shape) if args.shape else None,
            image=args.image, num_images=args.num_images, rtol=args.rtol,
            opset=args.opset, force=args.force,
            analyze=not args.no_analysis, logger=logger)
    except AcnetError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    print('\n'.join(summary_lines(report)))
    for path in report['outputs']:
        print(f'wrote {path}')
    print(f'took {report["seconds"]:.1f} s')
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
