#!/usr/bin/env python
"""Write the embedded synthetic detection dataset (COCO format).

    python tools/make_shapes_dataset.py [--out data/shapes] [--train 600]
        [--val 100] [--size 160] [--seed 0]
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/shapes')
    parser.add_argument('--train', type=int, default=600)
    parser.add_argument('--val', type=int, default=100)
    parser.add_argument('--size', type=int, default=160)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.train < 1 or args.val < 1 or args.size < 64:
        print('error: --train and --val must be >= 1 and --size >= 64',
              file=sys.stderr)
        return 2
    from acnet_backbone.datasets import make_shapes_dataset
    paths = make_shapes_dataset(args.out, args.train, args.val, args.size,
                                args.seed)
    for split, path in paths.items():
        print(f'{split}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
