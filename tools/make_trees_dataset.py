#!/usr/bin/env python
"""Write the real-image tree-crown detection set (NEON airborne RGB, 10 cm
per pixel, from the deepforest 2.1.0 wheel) as a COCO dataset.

    python tools/make_trees_dataset.py [--out data/trees] [--source WHEEL|DIR]
        [--cache-dir DIR] [--tile 400] [--train-stride PX] [--force]

Without --source the pinned wheel is fetched with `pip download --no-deps`
into the cache (once); deepforest is never imported. Every source file is
checked against a pinned sha256. Train tiles come from one YELL image, val
tiles from the other YELL image and the OSBS and SOAP sites; one class,
`tree`. The folder is written whole or not at all.
"""
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

FLAGS = dict(source='--source', force='--force', tile='--tile',
             train_stride='--train-stride', root='--out')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('--out', default='data/trees', help='output folder')
    parser.add_argument('--source', help='the deepforest wheel or a folder '
                        'holding its deepforest/data files (offline '
                        'machines); default: download the pinned wheel')
    parser.add_argument('--cache-dir', help='where the downloaded wheel is '
                        'kept (default ~/.cache/acnet_backbone/deepforest)')
    parser.add_argument('--tile', type=int, default=400,
                        help='tile side in pixels')
    parser.add_argument('--train-stride', type=int,
                        help='distance between train tiles in pixels '
                        '(default: half a tile)')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing output folder')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from acnet_backbone.datasets.trees import (dataset_summary,
                                               make_trees_dataset)
    from acnet_backbone.errors import AcnetError, flag_message
    try:
        paths = make_trees_dataset(args.out, source=args.source,
                                   tile=args.tile,
                                   train_stride=args.train_stride,
                                   cache_dir=args.cache_dir, force=args.force)
    except AcnetError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    for split, info in dataset_summary(args.out).items():
        print(f'{split}: {paths[split]} ({info["images"]} images, '
              f'{info["boxes"]} boxes, {info["ignored"]} ignored; box side '
              f'p10/p50/p90 {info["box_side_p10_p50_p90"]} px)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
