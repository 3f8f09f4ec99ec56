#!/usr/bin/env python
"""The pretrain -> fine-tune journey on the embedded data, on a CPU
(`make journey`):

1. makes the classification form of the shapes data (and the detection set)
   where missing;
2. pretrains the half-width ResNet-18 and ACResNet-18 ('bn') classifiers with
   mmpretrain (configs/pretrain/*_shapes-cls.py, through tools/train.py);
3. fine-tunes the shapes RetinaNet from each checkpoint with mmdet's
   fine-tuning recipe (norm_eval=True, frozen_stages=1) over several seeds
   with tools/compare.py, the plain one as the baseline;
4. writes WORK/journey.json and WORK/journey.md (pretraining accuracy, the
   fine-tune comparison with paired intervals).

    python tools/journey.py [--work-dir work_dirs/journey] [--seeds 0 1 2]

Finished steps are reused, so a second call only re-reports.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
# mmengine imports pkg_resources (setuptools<81): harmless, keep it off the console
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

PRETRAIN = ('fcnresnet18_shapes-cls', 'acresnet18_shapes-cls')
FINETUNE = ('retinanet_fcnresnet18_fpn_shapes-ft',
            'retinanet_acresnet18_fpn_shapes-ft')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/journey',
                        help='must match the fine-tune configs\' checkpoint '
                        'paths (work_dirs/journey)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    return parser.parse_args(argv)


def tool(name, *args):
    cmd = [sys.executable, osp.join(ROOT, 'tools', name), *args]
    print(f'[journey] $ {" ".join(cmd[1:])}', flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def accuracy(work_dir):
    """Top-1 accuracy of the last validation in an mmengine work dir."""
    best = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'accuracy/top1' in rec:
                    best = rec['accuracy/top1']
    return best


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.config import Config

    from acnet_backbone.datasets import (make_shapes_cls_dataset,
                                         make_shapes_dataset)
    from acnet_backbone.study import write_json, write_text
    os.chdir(ROOT)
    if not osp.isfile('data/shapes_cls/annotations/val.txt'):
        print('[journey] making the classification data in data/shapes_cls')
        make_shapes_cls_dataset('data/shapes_cls')
    if not osp.isfile('data/shapes/annotations/val.json'):
        print('[journey] making the detection data in data/shapes')
        make_shapes_dataset('data/shapes')

    pretrain = {}
    for name in PRETRAIN:
        config = osp.join('configs', 'pretrain', f'{name}.py')
        cfg = Config.fromfile(config)
        work = osp.join(args.work_dir, f'pretrain_{name}')
        ckpt = osp.join(work, f'iter_{cfg.train_cfg.max_iters}.pth')
        if not osp.isfile(ckpt):
            if tool('train.py', config, '--work-dir', work) != 0:
                print(f'error: pretraining {name} failed', file=sys.stderr)
                return 1
        pretrain[name] = dict(config=config, checkpoint=ckpt,
                              top1=accuracy(work))
    for name in FINETUNE:
        cfg = Config.fromfile(osp.join('configs', 'shapes', f'{name}.py'))
        path = cfg.model.backbone.init_cfg.checkpoint
        if not osp.isfile(path):
            print(f'error: {name} fine-tunes from {path}, which the '
                  f'pretraining did not write (--work-dir must be '
                  'work_dirs/journey, or edit the configs)', file=sys.stderr)
            return 2
    study = osp.join(args.work_dir, 'finetune')
    configs = [osp.join('configs', 'shapes', f'{n}.py') for n in FINETUNE]
    if tool('compare.py', *configs, '--seeds', *map(str, args.seeds),
            '--work-dir', study) != 0:
        print('error: the fine-tune study failed', file=sys.stderr)
        return 1
    with open(osp.join(study, 'compare.json')) as f:
        finetune = json.load(f)
    report = dict(pretrain=pretrain, finetune=finetune)
    write_json(osp.join(args.work_dir, 'journey.json'), report)
    lines = ['| pretrained backbone (mmpretrain) | val top-1 (%) |',
             '| --- | --- |']
    lines += [f'| {n} | {p["top1"]:.1f} |' if p['top1'] is not None else
              f'| {n} | - |' for n, p in pretrain.items()]
    with open(osp.join(study, 'compare.md')) as f:
        text = '\n'.join(lines) + '\n\nFine-tuned detectors:\n\n' + f.read()
    write_text(osp.join(args.work_dir, 'journey.md'), text)
    print('\n' + text)
    print(f'wrote {osp.join(args.work_dir, "journey.{json,md}")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
