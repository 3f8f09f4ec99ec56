"""tools/compare.py: seeds x configs trained with mmengine's Runner, paired
statistics, resume without retraining, one-line errors."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from scipy import stats

from acnet_backbone.datasets import make_shapes_dataset
from acnet_backbone.study import mean_std, summarise, t_interval

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'compare.py')
SHAPES = osp.join(ROOT, 'configs', 'shapes')
PLAIN = osp.join(SHAPES, 'retinanet_fcnresnet18_fpn_shapes.py')
ACB = osp.join(SHAPES, 'retinanet_acresnet18_fpn_shapes.py')


def tiny_options(data):
    root = str(data) + '/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/val.json',
        f'test_evaluator.ann_file={root}annotations/val.json',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'model.backbone.base_channels=8',
        'model.neck.in_channels=[8,16,32,64]', 'model.neck.out_channels=32',
        'model.bbox_head.in_channels=32', 'model.bbox_head.feat_channels=32',
        'model.bbox_head.norm_cfg.num_groups=8',
        'default_hooks.logger.interval=1',
        'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=3',
    ]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900)


def test_statistics_are_paired_student_t():
    runs = [dict(config=c, seed=s, bbox_mAP=m, bbox_mAP_50=m + 0.2,
                 bbox_mAP_75=m - 0.1, train_seconds=1.0, final_loss=0.5)
            for c, s, m in [('a', 0, 0.50), ('a', 1, 0.40), ('a', 2, 0.45),
                            ('b', 0, 0.55), ('b', 1, 0.42), ('b', 2, 0.52),
                            ('b', 3, 0.99)]]
    report = summarise(runs, ['a', 'b'])
    a, b = report['summary']
    assert a['n'] == 3 and b['n'] == 4
    assert a['bbox_mAP_mean'] == pytest.approx(0.45)
    assert a['bbox_mAP_std'] == pytest.approx(0.05)  # sample std, n - 1
    (d, ) = report['differences']
    assert d['config'] == 'b' and d['baseline'] == 'a'
    assert d['seeds'] == [0, 1, 2]  # seed 3 has no partner
    diffs = [0.05, 0.02, 0.07]
    assert d['bbox_mAP_diff_mean'] == pytest.approx(sum(diffs) / 3)
    res = stats.ttest_1samp(diffs, 0.0)
    lo, hi = res.confidence_interval(0.95)
    assert d['ci95'] == pytest.approx([lo, hi])
    assert mean_std([1.0]) == (1.0, None) and t_interval([1.0]) is None


def test_compare_tool_end_to_end_and_resume(tmp_path):
    data = tmp_path / 'data'
    make_shapes_dataset(str(data), 6, 4, 96, seed=3, progress=False)
    work = tmp_path / 'study'
    args = [PLAIN, ACB, '--seeds', '0', '1', '--work-dir', str(work),
            '--cfg-options', *tiny_options(data)]
    first = run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'run 4/4' in first.stdout and 'ETA' in first.stdout
    report = json.load(open(work / 'compare.json'))
    assert set(report) == {'runs', 'summary', 'differences'}
    assert len(report['runs']) == 4
    for r in report['runs']:
        for key in ('config', 'seed', 'bbox_mAP', 'bbox_mAP_50',
                    'bbox_mAP_75', 'train_seconds', 'final_loss',
                    'loss_curve'):
            assert key in r, key
        assert [p[0] for p in r['loss_curve']] == [1, 2, 3]
    names = [s['config'] for s in report['summary']]
    assert names == ['retinanet_fcnresnet18_fpn_shapes',
                     'retinanet_acresnet18_fpn_shapes']
    for s in report['summary']:
        maps = [r['bbox_mAP'] for r in report['runs']
                if r['config'] == s['config']]
        mean, std = mean_std(maps)
        assert s['n'] == 2 and s['bbox_mAP_mean'] == pytest.approx(mean)
        assert s['bbox_mAP_std'] == pytest.approx(std)
    (d, ) = report['differences']
    by = {(r['config'], r['seed']): r['bbox_mAP'] for r in report['runs']}
    diffs = [by[(names[1], s)] - by[(names[0], s)] for s in (0, 1)]
    assert d['bbox_mAP_diff_mean'] == pytest.approx(sum(diffs) / 2)
    assert d['baseline'] == names[0] and len(d['ci95']) == 2
    assert (work / 'compare.png').stat().st_size > 10_000
    assert '95% CI' in (work / 'compare.md').read_text()

    # the same call again: nothing retrained, the same report
    stamps = {p: p.stat().st_mtime for p in work.glob('*/seed_*/result.json')}
    assert len(stamps) == 4
    second = run(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert '4 already done, 0 to train' in second.stdout
    assert {p: p.stat().st_mtime for p in stamps} == stamps
    assert json.load(open(work / 'compare.json')) == report

    # an interrupted run (no result.json) is trained again, on its own
    victim = work / 'retinanet_acresnet18_fpn_shapes' / 'seed_1'
    os.remove(victim / 'result.json')
    third = run(*args)
    assert third.returncode == 0, third.stderr[-3000:]
    assert '3 already done, 1 to train' in third.stdout
    assert (victim / 'result.json').exists()

    # other settings in the same folder are refused, not mixed in
    changed = run(*args[:-1], 'train_cfg.max_iters=4')
    assert changed.returncode == 2
    assert changed.stderr.strip().startswith('error:')
    assert 'cfg_options' in changed.stderr


def test_bad_inputs_one_line(tmp_path):
    cases = [
        ([PLAIN, ACB, '--seeds', '0', '0'], 'repeats a seed'),
        ([str(tmp_path / 'nope.py'), '--seeds', '0'], 'config not found'),
        ([PLAIN, PLAIN, '--seeds', '0'], 'share a name'),
        ([PLAIN, '--seeds', '0', '--cfg-options',
          f'train_dataloader.dataset.data_root={tmp_path}/none/'],
         'dataset of'),
    ]
    for args, message in cases:
        result = run(*args, '--work-dir', str(tmp_path / 'w'))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith('error:'), lines
        assert message in lines[0], lines[0]
