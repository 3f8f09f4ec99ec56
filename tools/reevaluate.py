#!/usr/bin/env python
"""Evaluate a finished study's checkpoints again under changed settings.

    python tools/reevaluate.py W --out-dir W2 --cfg-options k=v [k=v ...]
        [--metric coco/bbox_mAP]

Every run of the study in W (its compare.json, written by tools/compare.py)
is evaluated again, without training: its own dumped config with the
--cfg-options merged in (e.g. a larger val set) and its last checkpoint,
through the config's validation loop and evaluator. Writes W2/compare.json
(the same schema: runs, summary, paired differences), W2/compare.md and
W2/compare.png. Finished evaluations are reused.
"""
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from acnet_backbone.cli import tool_parser
    parser = tool_parser(__doc__)
    parser.add_argument('work_dir', metavar='W', help='the study\'s folder')
    parser.add_argument('--out-dir', required=True, metavar='W2')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        required=True,
                        help='settings changed in every run\'s config')
    parser.add_argument('--metric', default='coco/bbox_mAP',
                        help='evaluator key the summary and differences use')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import acnet_backbone  # noqa: F401
    from acnet_backbone.errors import flag_message
    from acnet_backbone.study import (FLAGS, StudyError, markdown,
                                      reevaluate_study)
    try:
        report = reevaluate_study(args.work_dir, args.out_dir,
                                  args.cfg_options, metric=args.metric)
    except StudyError as err:
        print(f'error: {flag_message(err, FLAGS)}', file=sys.stderr)
        return 2
    print('\n' + markdown(report))
    print(f'wrote {osp.join(args.out_dir, "compare.{json,md,png}")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
