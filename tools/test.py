#!/usr/bin/env python
"""Evaluate a checkpoint (a detector, segmentor or classifier, as its
config's default_scope says) with mmdet's test.py command line, with
acnet_backbone imported.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show-dir DIR] [--cfg-options k=v ...] [--launcher ...]
"""
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the metrics go')
    parser.add_argument('--out', help='dump predictions to a pickle file')
    parser.add_argument('--show-dir', help='save painted predictions under '
                        'WORK_DIR/TIMESTAMP/SHOW_DIR')
    parser.add_argument('--wait-time', type=float, default=2)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint,
                                                 'checkpoint')):
        if not osp.isfile(path):
            print(f'error: {what} not found: {path}', file=sys.stderr)
            return 2
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        print('error: --out must end with .pkl or .pickle', file=sys.stderr)
        return 2
    import acnet_backbone  # noqa: F401
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.evaluator import DumpResults

    from acnet_backbone.runner_utils import build_runner, load_tool_config
    from acnet_backbone.training import finish_distributed

    setup_cache_size_limit_of_dynamo()
    cfg = load_tool_config(args.config, args.work_dir, args.cfg_options,
                           args.launcher)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        hooks = cfg.default_hooks
        if 'visualization' not in hooks:
            print('error: --show-dir needs default_hooks.visualization',
                  file=sys.stderr)
            return 2
        hooks.visualization.draw = True
        hooks.visualization.test_out_dir = args.show_dir
        hooks.visualization.wait_time = args.wait_time
    from acnet_backbone.errors import InputError, one_line
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    try:
        runner.test()
    except InputError as err:  # e.g. a checkpoint refused by safe loading
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2
    finish_distributed()
    return 0


if __name__ == '__main__':
    sys.exit(main())
