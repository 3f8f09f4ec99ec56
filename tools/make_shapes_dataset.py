#!/usr/bin/env python
"""Write an embedded synthetic dataset: detection (COCO format, default),
its classification form for pretraining (mmpretrain's CustomDataset format)
or its semantic segmentation form (per-pixel label maps, mmseg's layout).

    python tools/make_shapes_dataset.py [--out data/shapes] [--train 600]
        [--val 100] [--size 160] [--seed 0]
    python tools/make_shapes_dataset.py --task cls [--out data/shapes_cls]
        [--train 2000] [--val 400] [--size 64] [--seed 100]
    python tools/make_shapes_dataset.py --task seg [--out data/shapes_seg]
        [--train 600] [--val 100] [--size 128] [--seed 200]
"""
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

DEFAULTS = dict(det=dict(out='data/shapes', train=600, val=100, size=160,
                         seed=0),
                cls=dict(out='data/shapes_cls', train=2000, val=400, size=64,
                         seed=100),
                seg=dict(out='data/shapes_seg', train=600, val=100, size=128,
                         seed=200))


def main(argv=None) -> int:
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('--task', choices=sorted(DEFAULTS), default='det')
    parser.add_argument('--out')
    parser.add_argument('--train', type=int)
    parser.add_argument('--val', type=int)
    parser.add_argument('--size', type=int)
    parser.add_argument('--seed', type=int)
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.task].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.train < 1 or args.val < 1 or args.size < 32:
        print('error: --train and --val must be >= 1 and --size >= 32',
              file=sys.stderr)
        return 2
    from acnet_backbone.datasets import (make_shapes_cls_dataset,
                                         make_shapes_dataset,
                                         make_shapes_seg_dataset)
    make = dict(det=make_shapes_dataset, cls=make_shapes_cls_dataset,
                seg=make_shapes_seg_dataset)[args.task]
    paths = make(args.out, args.train, args.val, args.size, args.seed)
    for split, path in paths.items():
        print(f'{split}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
