#!/usr/bin/env python
"""Run the whole-image study of a spec file: the accuracy of tiled
prediction over a whole held-out image, or its speed over a large image
beside DeepForest's predict_tile; or write the random-weight ACResNet-50
RetinaNet that the speed study deploys.

    python tools/whole_image_study.py accuracy SPEC.json --out RESULTS.json
        [--note TEXT]
    python tools/whole_image_study.py speed SPEC.json --out RESULTS.json
        [--deepforest-python PY] [--note TEXT]
    python tools/whole_image_study.py prepare-r50 --out-dir DIR
        [--data-root data/trees/] [--seed 0] [--force]

A spec file (configs/trees/whole_image_accuracy.json, whole_image_speed.json)
names the image, the patch layout, the threads and the detectors: deploy
folders of tools/deploy.py with a backend and precision, or a config and
checkpoint in torch; the speed spec adds DeepForest rows run by the Python
of DeepForest's own virtualenv (make deepforest-venv); --deepforest-python
overrides it. Each study rewrites its own section of RESULTS.json (the
other is kept) with the machine, the load averages at the start and the
end and --note. prepare-r50 writes DIR/retinanet_acresnet50_fpn_trees.py
(configs/acnet's ACResNet-50 RetinaNet with one class on the tree set) and
DIR/random.pth (random weights, every BN randomised) for tools/deploy.py.
Run from the repository root; the pipeline is
acnet_backbone.tiling.benchmark.run_spec.
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', category=DeprecationWarning)

FLAGS = dict(out_file='--out', out_dir='--out-dir', force='--force',
             deepforest_python='--deepforest-python')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    for name, what in (('accuracy', 'whole held-out image vs its tiles'),
                       ('speed', 'seconds per megapixel beside DeepForest')):
        p = sub.add_parser(name, help=what)
        p.add_argument('spec', help='the JSON spec file')
        p.add_argument('--out', required=True, dest='out_file',
                       help='the results JSON (its other section is kept)')
        p.add_argument('--note', help='written into the section (e.g. '
                       'what else ran on the machine)')
        if name == 'speed':
            p.add_argument('--deepforest-python', help="the Python of "
                           "DeepForest's virtualenv (default: the spec's)")
    p = sub.add_parser('prepare-r50', help='the random-weight ACResNet-50 '
                       'RetinaNet config and checkpoint')
    p.add_argument('--out-dir', required=True, help='output folder')
    p.add_argument('--data-root', default='data/trees/',
                   help='the tree set (tools/make_trees_dataset.py)')
    p.add_argument('--seed', type=int, default=0, help='weight seed')
    p.add_argument('--force', action='store_true',
                   help='overwrite existing outputs')
    return parser.parse_args(argv)


def _print_speed(section):
    print(f'{section["image"]} ({section["width"]}x{section["height"]}, '
          f'{section["crowns"]} crowns), load average {section["load_average"]}')
    for r in section['rows']:
        cpu = r.get('cpu_s_per_megapixel')
        print(f'  {r["detector"]}: {r["seconds"]:.1f} s, '
              f'{r["s_per_megapixel"]:.2f} s/MPx'
              + ('' if cpu is None else f' (CPU {cpu:.2f} s/MPx)')
              + f', {r["speedup_vs_baseline"]:.2f}x vs baseline')


def _print_accuracy(section):
    print(f'{section["image"]}, load average {section["load_average"]}')
    for r in section['rows']:
        whole = ', '.join(f'overlap {w["overlap"]:g} {w["bbox_mAP"]:.3f}'
                          for w in r['whole'])
        print(f'  {r["detector"]}: tiles mAP {r["tiles"]["bbox_mAP"]:.3f}, '
              f'whole image {whole}')


def main(argv=None) -> int:
    args = parse_args(argv)
    import acnet_backbone  # noqa: F401 (registers the backbones)
    from mmengine.logging import MMLogger

    from acnet_backbone.errors import AcnetError, flag_message
    from acnet_backbone.tiling import benchmark
    logger = MMLogger.get_instance('acnet_whole_image', log_level='INFO')
    try:
        if args.command == 'prepare-r50':
            out = benchmark.prepare_r50(args.out_dir, args.data_root,
                                        args.seed, args.force)
        else:
            out = benchmark.run_spec(
                args.command, args.spec, args.out_file,
                deepforest_python=getattr(args, 'deepforest_python', None),
                note=args.note, logger=logger)
    except AcnetError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    if args.command == 'prepare-r50':
        for path in out.values():
            print(f'wrote {path}')
        return 0
    (_print_speed if args.command == 'speed' else _print_accuracy)(out)
    print(f'wrote {args.out_file} ({args.command})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
