#!/usr/bin/env python
"""Train a model: mmdet's train.py command line, with acnet_backbone
imported (safe checkpoint loading, ACResNet / FCNResNet registered). The
config's default_scope picks the library: mmdet detectors (configs/acnet,
configs/shapes) and mmpretrain classifiers (configs/pretrain) alike.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [PATH]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
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
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from PATH, or without PATH from the latest checkpoint '
        'of the work dir')
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
    if not osp.isfile(args.config):
        print(f'error: config not found: {args.config}', file=sys.stderr)
        return 2
    if args.resume not in (None, 'auto') and not osp.isfile(args.resume):
        print(f'error: checkpoint not found: {args.resume}', file=sys.stderr)
        return 2
    import acnet_backbone  # noqa: F401
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    from acnet_backbone.runner_utils import load_tool_config
    from acnet_backbone.training import finish_distributed, train

    setup_cache_size_limit_of_dynamo()
    cfg = load_tool_config(args.config, args.work_dir, args.cfg_options,
                           args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            print('error: --auto-scale-lr needs auto_scale_lr.base_batch_size '
                  'in the config', file=sys.stderr)
            return 2
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    from acnet_backbone.errors import InputError, one_line
    try:
        train(cfg)
    except InputError as err:
        print(f'error: {one_line(err)}', file=sys.stderr)
        return 2
    finish_distributed()
    return 0


if __name__ == '__main__':
    sys.exit(main())
