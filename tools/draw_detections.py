#!/usr/bin/env python
"""Draw the ground truth and the detections of one or more trained detectors
side by side on the same images (e.g. plain beside ACB on a val tile).

    python tools/draw_detections.py --model LABEL CONFIG CHECKPOINT
        [--model LABEL CONFIG CHECKPOINT ...] --ann-file ANN.json
        --images IMG [IMG ...] --out FILE.png [--score-thr 0.3] [--scale 1]

One row per image: the ground truth (ignored boxes left out), then one panel
per --model in the order given. The picture is written atomically.
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
    parser.add_argument('--model', nargs=3, action='append', required=True,
                        metavar=('LABEL', 'CONFIG', 'CHECKPOINT'),
                        help='a detector to draw (repeatable)')
    parser.add_argument('--ann-file', required=True,
                        help='COCO annotations of the images')
    parser.add_argument('--images', nargs='+', required=True)
    parser.add_argument('--out', required=True, help='the picture (.png)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--scale', type=float, default=1.0,
                        help='enlarge the images this many times')
    parser.add_argument('--title')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import acnet_backbone  # noqa: F401
    from acnet_backbone.errors import AcnetError, one_line
    from acnet_backbone.visualize import draw_side_by_side
    try:
        counts = draw_side_by_side([tuple(m) for m in args.model],
                                   args.images, args.ann_file, args.out,
                                   score_thr=args.score_thr,
                                   scale=args.scale, title=args.title)
    except (AcnetError, FileNotFoundError) as err:
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2
    for c in counts:
        print(f'{c["image"]}: {c["model"]} {c["boxes"]} detections '
              f'({c["ground_truth"]} boxes)')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
