#!/usr/bin/env python
"""Speed, memory and fusion accuracy of ACResNet-50 against mmdet's ResNet-50,
measured side by side (interleaved repeats, so machine noise hits all alike).

    python tools/benchmark.py [--quick] [--device cpu|cuda] [--out-dir DIR]

Writes DIR/benchmark.json, DIR/benchmark.md (the tables printed) and
DIR/benchmark.png (ratios to ResNet-50); with --only-deploy only the torch vs
end-to-end ONNX latency, DIR/deploy_latency.md. The measurements are
acnet_backbone.benchmark.run_benchmark.
"""
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('--quick', action='store_true',
                        help='fewer repeats and sizes: a few minutes on CPU')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cuda when available, else cpu')
    parser.add_argument('--repeats', type=int, help='timed repeats per case')
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--skip-fuse-tool', action='store_true')
    parser.add_argument('--only-deploy', action='store_true',
                        help='only the torch vs end-to-end ONNX latency')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        print('error: --repeats must be at least 1', file=sys.stderr)
        return 2
    import torch
    from mmengine.logging import MMLogger

    from acnet_backbone import benchmark
    from acnet_backbone.errors import AcnetError, flag_message
    MMLogger.get_instance('acnet_benchmark', log_level='WARNING')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    print(f'device: {benchmark.device_name(device)}', flush=True)
    try:
        results = benchmark.run_benchmark(
            device, quick=args.quick, repeats=args.repeats,
            fuse_tool=not args.skip_fuse_tool, only_deploy=args.only_deploy)
    except AcnetError as err:
        print(f'error: {flag_message(err, dict(device="--device"))}',
              file=sys.stderr)
        return 2
    print(benchmark.markdown(results) if 'inference' in results else
          benchmark.deploy_table(results['deploy']))
    for path in benchmark.write_results(results, args.out_dir):
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
