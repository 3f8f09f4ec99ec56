#!/usr/bin/env python
"""bbox mAP and latency of deployed detectors in torch, onnxruntime (FP32,
INT8) and OpenVINO (FP32, BF16, INT8), interleaved on the same inputs.

    # many trained detectors: a study JSON (compare.json / journey.json) or
    # CONFIG CHECKPOINT pairs
    python tools/backend_study.py detectors --study STUDY.json --work-dir W
        [--configs NAME ...]
    python tools/backend_study.py detectors --runs CFG CKPT [CFG CKPT ...]
        --work-dir W [--precision fp32 bf16 int8] [--num-images N]
    # one large detector at full resolution (random weights unless
    # --checkpoint): latency and agreement with torch
    python tools/backend_study.py large CONFIG --work-dir W
        [--shape 800 1333] [--repeats 3]

Writes W/backend_study.json (detectors) or W/deploy_report.json (large);
every runtime uses --threads threads (default 1).
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', category=DeprecationWarning)
warnings.filterwarnings('ignore', message='.*TracerWarning')
warnings.filterwarnings('ignore', module=r'mmdeploy\.|torch\.onnx|mmcv\.ops')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    sub = parser.add_subparsers(dest='mode', required=True)
    det = sub.add_parser('detectors', help='many trained detectors')
    src = det.add_mutually_exclusive_group(required=True)
    src.add_argument('--study', help='a study JSON with checkpoints')
    src.add_argument('--runs', nargs='+', metavar='CFG_OR_CKPT',
                     help='CONFIG CHECKPOINT pairs')
    det.add_argument('--configs', nargs='+', metavar='NAME',
                     help='with --study: only the runs of these config '
                     'names (default: every run)')
    det.add_argument('--num-images', type=int, default=20)
    det.add_argument('--calib-images', type=int, default=64)
    det.add_argument('--force', action='store_true')
    large = sub.add_parser('large', help='one detector at full resolution')
    large.add_argument('config')
    large.add_argument('--checkpoint', help='default: random weights')
    large.add_argument('--shape', type=int, nargs=2, default=[800, 1333])
    large.add_argument('--repeats', type=int, default=3)
    for p in (det, large):
        p.add_argument('--work-dir', required=True)
        p.add_argument('--precision', nargs='+',
                       choices=['fp32', 'bf16', 'int8'],
                       help='OpenVINO precisions (default: every one this '
                       'CPU runs natively)')
        p.add_argument('--threads', type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.mode == 'detectors' and args.runs and len(args.runs) % 2:
        print('error: --runs takes CONFIG CHECKPOINT pairs', file=sys.stderr)
        return 2
    import acnet_backbone  # noqa: F401
    from mmengine.logging import MMLogger

    from acnet_backbone.errors import AcnetError
    from acnet_backbone.study import backends
    logger = MMLogger.get_instance('acnet_backend_study', log_level='INFO')
    try:
        if args.mode == 'large':
            report = backends.large_detector_latency(
                args.config, args.work_dir, tuple(args.shape), args.repeats,
                args.precision, threads=args.threads,
                checkpoint=args.checkpoint, logger=logger)
            from acnet_backbone.deploy.end2end import summary_lines
            print('\n'.join(summary_lines(report)))
            lat = report['latency_ms']
            for key in backends.LABELS:
                if key in lat:
                    print(f'{backends.LABELS[key]}: {lat[key]:.1f} ms, '
                          f'{lat["onnx"] / lat[key]:.2f}x onnxruntime FP32')
            return 0
        runs = args.study or list(zip(args.runs[::2], args.runs[1::2]))
        result = backends.backend_study(
            runs, args.work_dir, args.precision, args.calib_images,
            args.num_images, args.threads, args.force, logger,
            names=args.configs)
    except AcnetError as err:
        print(f'error: {str(err).splitlines()[0]}', file=sys.stderr)
        return 2
    for row in result['summary']:
        ci = row['drop_ci95']
        drop = '' if row['drop_mean'] is None else (
            f', drop vs torch {row["drop_mean"]:+.4f}' +
            (f' [{ci[0]:+.4f}, {ci[1]:+.4f}]' if ci else ''))
        print(f'{row["name"]} {row["label"]}: bbox mAP '
              f'{row["bbox_mAP_mean"]:.4f}{drop}, latency '
              f'{row["latency_ms_median"]:.2f} ms '
              f'({row["speedup_median"]:.2f}x onnxruntime FP32)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
