#!/usr/bin/env python
"""A/B study of detector configs over several seeds: does ACNet help?

    python tools/compare.py CONFIG [CONFIG ...] --seeds S [S ...] --work-dir W
        [--cfg-options k=v ...]

Trains every config under every seed with mmengine's Runner (what
tools/train.py does, one fresh process per run), evaluates COCO bbox mAP
after training, and writes W/compare.json (runs, summary, paired
differences to the first config with Student-t 95% intervals),
W/compare.md and W/compare.png. A finished run is never retrained, so a
second identical call only re-reads and re-reports; an interrupted run
resumes from its last checkpoint (or restarts when it has none).
"""
import argparse
import json
import multiprocessing as mp
import os
import os.path as osp
import sys
import time
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='The first config is the baseline of the differences.')
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument('--seeds', nargs='+', type=int, required=True,
                        metavar='S', help='one run per seed and config')
    parser.add_argument('--work-dir', required=True, metavar='W')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, key=value')
    return parser.parse_args(argv)


def check_inputs(args):
    """Everything that can be checked before any training; raises
    StudyError with one line."""
    from mmengine.config import Config

    from acnet_backbone.study import StudyError, config_name, run_dir, \
        run_spec

    if len(set(args.seeds)) != len(args.seeds):
        raise StudyError(f'--seeds repeats a seed: {args.seeds}')
    if any(s < 0 for s in args.seeds):
        raise StudyError(f'--seeds must be non-negative: {args.seeds}')
    names = [config_name(c) for c in args.configs]
    if len(set(names)) != len(names):
        raise StudyError(f'two configs share a name: {names}')
    for config in args.configs:
        if not osp.isfile(config):
            raise StudyError(f'config not found: {config}')
        try:
            cfg = Config.fromfile(config)
            if args.cfg_options:
                cfg.merge_from_dict(args.cfg_options)
        except Exception as err:  # a config is Python: anything can fail
            raise StudyError(f'cannot read config {config}: '
                             f'{type(err).__name__}: {err}') from None
        for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                    'train_cfg'):
            if key not in cfg:
                raise StudyError(f'{config} has no {key}: not a training '
                                 'config')
        if 'max_iters' not in cfg.train_cfg:
            raise StudyError(f'{config}: train_cfg has no max_iters (the '
                             'study needs an iteration-based schedule)')
        for loader in ('train_dataloader', 'val_dataloader'):
            ds = cfg[loader].dataset
            ann = osp.join(ds.get('data_root', ''), ds.get('ann_file', ''))
            if not osp.isfile(ann):
                hint = (' (make it with tools/make_shapes_dataset.py)'
                        if 'shapes' in ann else '')
                raise StudyError(f'dataset of {config} not found: {ann} is '
                                 f'missing{hint}')
    # a folder that holds runs of the same name under other settings is not
    # this study: refuse rather than mix them
    for config in args.configs:
        for seed in args.seeds:
            path = osp.join(run_dir(args.work_dir, config, seed), 'run.json')
            if osp.isfile(path):
                with open(path) as f:
                    old = json.load(f)
                new = run_spec(config, seed, args.cfg_options)
                if old != new:
                    diff = sorted(k for k in new if old.get(k) != new[k])
                    raise StudyError(
                        f'{osp.dirname(path)} holds a run with other '
                        f'{", ".join(diff)}: use another --work-dir')


def main(argv=None) -> int:
    args = parse_args(argv)
    import acnet_backbone  # noqa: F401
    from acnet_backbone.study import (StudyError, config_name, markdown,
                                      plot, run_dir, run_spec, summarise,
                                      train_one, write_json, write_text)
    try:
        check_inputs(args)
        os.makedirs(args.work_dir, exist_ok=True)
    except StudyError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except OSError as err:
        print(f'error: cannot create {args.work_dir}: {err.strerror}',
              file=sys.stderr)
        return 2

    plan = [(c, s) for s in args.seeds for c in args.configs]
    todo = [(c, s) for c, s in plan if not osp.isfile(
        osp.join(run_dir(args.work_dir, c, s), 'result.json'))]
    print(f'[compare] {len(plan)} runs ({len(args.configs)} configs x '
          f'{len(args.seeds)} seeds), {len(plan) - len(todo)} already done, '
          f'{len(todo)} to train in {args.work_dir}')
    ctx = mp.get_context('spawn')
    spent = []
    for i, (config, seed) in enumerate(todo):
        out = run_dir(args.work_dir, config, seed)
        os.makedirs(out, exist_ok=True)
        spec = run_spec(config, seed, args.cfg_options)
        write_json(osp.join(out, 'run.json'), spec)
        eta = ('' if not spent else
               f', ETA {sum(spent) / len(spent) * (len(todo) - i) / 60:.0f} '
               'min')
        log = osp.join(out, 'train.log')
        print(f'[compare] run {i + 1}/{len(todo)}: {osp.basename(config)} '
              f'seed {seed} (log: {log}{eta})', flush=True)
        t0 = time.perf_counter()
        proc = ctx.Process(target=train_one, args=(
            dict(spec, options=args.cfg_options or {}), out, log))
        proc.start()
        try:
            proc.join()
        except KeyboardInterrupt:
            proc.terminate()
            proc.join()
            print('error: interrupted; the next call resumes this run',
                  file=sys.stderr)
            return 130
        if proc.exitcode != 0 or not osp.isfile(
                osp.join(out, 'result.json')):
            print(f'error: run {osp.basename(config)} seed {seed} failed '
                  f'(exit {proc.exitcode}); see {log}', file=sys.stderr)
            return 1
        spent.append(time.perf_counter() - t0)
        with open(osp.join(out, 'result.json')) as f:
            res = json.load(f)
        if res['bbox_mAP'] is None:
            print(f'error: run {osp.basename(config)} seed {seed} gave no '
                  f'bbox mAP; see {log}', file=sys.stderr)
            return 1
        print(f'[compare]   bbox mAP {res["bbox_mAP"]:.3f}, final loss '
              f'{res["final_loss"]:.3f}, {res["train_seconds"]:.0f} s')

    runs = []
    for config, seed in plan:
        with open(osp.join(run_dir(args.work_dir, config, seed),
                           'result.json')) as f:
            runs.append(json.load(f))
    report = summarise(runs, [config_name(c) for c in args.configs])
    report_md = markdown(report)
    write_json(osp.join(args.work_dir, 'compare.json'), report)
    write_text(osp.join(args.work_dir, 'compare.md'), report_md)
    plot(report, osp.join(args.work_dir, 'compare.png'))
    print('\n' + report_md)
    print(f'wrote {osp.join(args.work_dir, "compare.{json,md,png}")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
