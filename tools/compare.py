#!/usr/bin/env python
"""A/B study of configs over several seeds: does ACNet help?

    python tools/compare.py CONFIG [CONFIG ...] --seeds S [S ...] --work-dir W
        [--metric coco/bbox_mAP] [--launcher none|pytorch|slurm] [--gpus N]
        [--cfg-options k=v ...]

Trains every config under every seed through mmengine's Runner (the entry
point of tools/train.py), each run in its own process, or in N processes
through torchrun (--launcher pytorch) or srun (--launcher slurm); epoch- and
iteration-based configs alike. After training each run is evaluated with
its config's own evaluator and every metric is recorded; --metric picks the
one summarised. Writes W/compare.json (runs, summary, paired differences to
the first config with Student-t 95% intervals), W/compare.md and
W/compare.png. A finished run is reused, an interrupted one resumes from its
last checkpoint; a run whose merged config changed is refused.
"""
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from acnet_backbone.cli import tool_parser
    parser = tool_parser(
        __doc__, epilog='The first config is the baseline of the differences.')
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument('--seeds', nargs='+', type=int, required=True,
                        metavar='S', help='one run per seed and config')
    parser.add_argument('--work-dir', required=True, metavar='W')
    parser.add_argument('--metric', default='coco/bbox_mAP',
                        help='evaluator key the summary and differences use '
                        '(e.g. coco/segm_mAP, mIoU, accuracy/top1)')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'])
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run (pytorch: torchrun '
                        '--nproc_per_node; slurm: srun --ntasks)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import acnet_backbone  # noqa: F401
    from acnet_backbone.errors import flag_message
    from acnet_backbone.study import (FLAGS, StudyError, StudyRunError,
                                      markdown, run_study)
    try:
        report = run_study(args.configs, args.seeds, args.work_dir,
                           cfg_options=args.cfg_options, metric=args.metric,
                           launcher=args.launcher, gpus=args.gpus)
    except StudyError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    except StudyRunError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('error: interrupted; the next call resumes the run',
              file=sys.stderr)
        return 130
    print('\n' + markdown(report))
    print(f'wrote {osp.join(args.work_dir, "compare.{json,md,png}")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
