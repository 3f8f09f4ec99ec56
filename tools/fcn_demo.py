#!/usr/bin/env python
"""Classify an image with a fully convolutional ResNet and draw where the top
class is seen.

    python tools/fcn_demo.py IMAGE --checkpoint CKPT [--depth 18]
        [--out heatmap.png] [--window 7]

CKPT is a torchvision classification checkpoint file (or a torchvision://
name where the network is reachable). Prints the top-5 ImageNet classes of
the global logits and writes a PNG overlaying the dense sliding-window score
map of the top class on the image (acnet_backbone.fcn_demo).
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
    parser.add_argument('image')
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--depth', type=int, default=18,
                        choices=[18, 34, 50, 101, 152])
    parser.add_argument('--out', default='heatmap.png')
    parser.add_argument('--window', type=int, default=7,
                        help='sliding window of the dense map, in stride-32 '
                        'cells')
    parser.add_argument('--size', type=int, default=448,
                        help='shorter image side fed to the network')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.logging import MMLogger

    from acnet_backbone.errors import AcnetError, one_line
    from acnet_backbone.fcn_demo import classify, draw_heatmap
    MMLogger.get_instance('fcn_demo', log_level='WARNING')
    try:
        result = classify(args.image, args.checkpoint, args.depth,
                          args.window, args.size)
    except AcnetError as err:
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2
    for p, name in result['top5']:
        print(f'{p:7.3f}  {name}')
    draw_heatmap(result, args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
