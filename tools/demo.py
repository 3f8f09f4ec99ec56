#!/usr/bin/env python
"""The demo (`make demo`), start to finish on a CPU: make the embedded
dataset, train an ACResNet RetinaNet on it, evaluate, fuse into a stock
ResNet detector, evaluate the fused model, export ONNX and compare, draw
detections, deploy end to end through mmdeploy (boxes-out ONNX) and evaluate
it, write a summary.

    python tools/demo.py [--config CONFIG] [--work-dir work_dirs/demo]
        [--max-iters N]

The pipeline is acnet_backbone.demo.run_demo.
"""
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'shapes',
                          'retinanet_acresnet18_fpn_shapes.py')
# the package's argument names in messages -> this tool's flags
FLAGS = dict(max_iters='--max-iters', config='--config')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/shapes')
    parser.add_argument('--max-iters', type=int,
                        help='override the schedule length')
    parser.add_argument('--num-vis', type=int, default=4,
                        help='val images to draw')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from acnet_backbone.demo import run_demo, summary_lines
    from acnet_backbone.errors import AcnetError, flag_message
    try:
        summary = run_demo(args.config, args.work_dir, args.data_root,
                           args.max_iters, args.num_vis)
    except AcnetError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    print('\n' + '\n'.join(summary_lines(summary)))
    print(f'\nwrote {osp.join(args.work_dir, "summary.json")} and '
          f'{summary["detections_png"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
