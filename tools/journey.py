#!/usr/bin/env python
"""Pretrain, then fine-tune, on the embedded data, one whole pipeline per
seed (the "journey", `make journey`): the plain and the ACB backbone are
each pretrained as a classifier, and each detector is fine-tuned from its
own seed's pretrained checkpoint, so the paired difference covers the
pretraining's randomness too.

Steps:

1. makes the classification and detection forms of the shapes data where
   missing;
2. for every seed, pretrains the half-width ResNet-18 and ACResNet-18 ('bn')
   classifiers with mmpretrain under that seed
   (configs/pretrain/*_shapes-cls.py);
3. fine-tunes the shapes RetinaNet from the same seed's checkpoint under that
   seed (configs/shapes/*-ft.py, mmdet's fine-tuning recipe);
4. writes WORK/journey.json (the fine-tune runs / summary / paired
   differences, plus the pretraining report) and WORK/journey.md.

    python tools/journey.py [--work-dir work_dirs/journey] [--seeds 0 1 2 3 4]
        [--launcher none|pytorch|slurm] [--gpus N]
        [--finetune PLAIN_FT ACB_FT | --route START:CONFIG ...]
        [--metric mIoU] [--pretrain-dir work_dirs/journey/pretrain]

Finished runs are reused, interrupted ones resume: a second call only
re-reports, a call with more seeds trains only the new pipelines.
`--finetune` replaces the fine-tuned RetinaNets by other configs (one per
pretraining: the plain one, then the ACB one), e.g. the segmentors of
configs/seg/*-ft.py compared over `--metric mIoU`; `--pretrain-dir` shares
another journey's pretrainings (`make journey-seg`).
`--route START:CONFIG` (repeatable; the first is the baseline) fine-tunes
CONFIG from the pretraining START: `plain`, `acb`, or `acb-fused` (the ACB
pretraining fused into a plain ResNet): the starting-point study
(`make study-start`).
"""
import os
import os.path as osp
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def parse_args(argv=None):
    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('--work-dir', default='work_dirs/journey',
                        help='relative to the repository root')
    parser.add_argument('--seeds', nargs='+', type=int,
                        default=[0, 1, 2, 3, 4])
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'])
    parser.add_argument('--gpus', type=int, default=1)
    parser.add_argument('--finetune', nargs=2, metavar=('PLAIN', 'ACB'),
                        help='fine-tune configs, relative to the '
                        'repository root (default: the shapes RetinaNets of '
                        'configs/shapes/*-ft.py)')
    parser.add_argument('--route', action='append', metavar='START:CONFIG',
                        help='a fine-tune config and the pretraining it '
                        'starts from (plain, acb or acb-fused), relative to '
                        'the repository root; repeat it, the first is the '
                        'baseline (instead of --finetune)')
    parser.add_argument('--metric', default=None,
                        help='metric of the fine-tuned models (default: '
                        'coco/bbox_mAP)')
    parser.add_argument('--pretrain-dir', default=None,
                        help='study folder of the pretrainings, relative '
                        'to the repository root (default: WORK/pretrain); '
                        'finished ones are reused')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import acnet_backbone  # noqa: F401
    from acnet_backbone.errors import flag_message
    from acnet_backbone.study import (FLAGS, StudyError, StudyRunError,
                                      ensure_shapes_data, parse_route,
                                      run_journey, run_routes)
    os.chdir(ROOT)  # the configs read data/ relative to the repository
    ensure_shapes_data('data')
    options = {k: v for k, v in dict(
        metric=args.metric, pretrain_dir=args.pretrain_dir).items()
        if v is not None}
    try:
        if args.route and args.finetune:
            raise StudyError('--route and --finetune exclude each other')
        if args.route:
            run_routes(args.work_dir, args.seeds,
                       [parse_route(r) for r in args.route],
                       launcher=args.launcher, gpus=args.gpus, **options)
        else:
            if args.finetune:
                options['finetune'] = args.finetune
            run_journey(args.work_dir, args.seeds, launcher=args.launcher,
                        gpus=args.gpus, **options)
    except StudyError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    except StudyRunError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('error: interrupted; the next call resumes', file=sys.stderr)
        return 130
    with open(osp.join(args.work_dir, 'journey.md')) as f:
        print('\n' + f.read())
    print(f'wrote {osp.join(args.work_dir, "journey.{json,md}")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
