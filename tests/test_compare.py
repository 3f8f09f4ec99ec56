"""The study (acnet_backbone.study, tools/compare.py): seeds x configs through
mmengine's Runner and launchers, epoch- and iteration-based configs, every
metric recorded, paired statistics, runs identified by their merged config,
resume after an interruption, one-line errors."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from scipy import stats

from acnet_backbone.datasets import make_shapes_dataset
from acnet_backbone.study import (StudyError, expected_metric_keys,
                                  first_difference, mean_std, summarise,
                                  t_interval)
from acnet_backbone.study.worker import complete_metrics
from acnet_backbone.safe_load import safe_load

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.dirname(osp.abspath(__file__))
TOOL = osp.join(ROOT, 'tools', 'compare.py')
SHAPES = osp.join(ROOT, 'configs', 'shapes')
PLAIN = osp.join(SHAPES, 'retinanet_fcnresnet18_fpn_shapes.py')
ACB = osp.join(SHAPES, 'retinanet_acresnet18_fpn_shapes.py')
COCO = osp.join(ROOT, 'configs', 'acnet')


def data_options(data):
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
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1',
    ]


def tiny_options(data, iters=3):
    return data_options(data) + [
        'model.backbone.base_channels=8',
        'model.neck.in_channels=[8,16,32,64]', 'model.neck.out_channels=32',
        'model.bbox_head.in_channels=32', 'model.bbox_head.feat_channels=32',
        'model.bbox_head.norm_cfg.num_groups=8',
        f'train_cfg.max_iters={iters}',
        f'default_hooks.checkpoint.interval={iters}',
    ]


def probe_config(folder, base, out_dir, stop_at=None):
    """``base`` (same file name, in ``folder``) with tests/study_probe.py's
    hook: records every rank's samples, may stop the run once."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, osp.basename(base))
    with open(path, 'w') as f:
        f.write(f"_base_ = '{base}'\n"
                "custom_imports = dict(imports=['acnet_backbone', "
                "'study_probe'], allow_failed_imports=False)\n"
                f"custom_hooks = [dict(type='StudyProbeHook', "
                f"out_dir='{out_dir}', stop_at={stop_at!r})]\n")
    return path


def run(*args, cwd=ROOT, tool=TOOL):
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    return subprocess.run([sys.executable, tool, *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900, env=env)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    data = tmp_path_factory.mktemp('shapes')
    make_shapes_dataset(str(data), 6, 4, 96, seed=3, progress=False)
    return data


def options_dict(options):
    """``--cfg-options`` strings as the dict mmengine merges."""
    from mmengine.config import DictAction
    return {k: DictAction._parse_iterable(v)
            for k, v in (o.split('=', 1) for o in options)}


@pytest.fixture(scope='module')
def pretrained(shapes, tmp_path_factory):
    """A checkpoint of each tiny shapes detector (plain, ACB) trained 40
    iterations (a few seconds): study runs that start from them detect
    something after their 3 iterations, so the report's means and paired
    differences are checked on non-zero numbers (3 iterations from scratch
    leave mAP 0 everywhere)."""
    from mmengine.config import Config

    from acnet_backbone.training import set_iterations, train_and_evaluate
    out = {}
    for name, base in (('plain', PLAIN), ('acb', ACB)):
        work = tmp_path_factory.mktemp(f'pretrained_{name}')
        cfg = Config.fromfile(base)
        cfg.merge_from_dict(options_dict(tiny_options(shapes, 40)))
        cfg.work_dir = str(work)
        set_iterations(cfg, 40)
        train_and_evaluate(cfg)
        out[name] = str(work / 'iter_40.pth')
    return out


def starting_from(checkpoint):
    """Config text that initialises the whole detector from ``checkpoint``."""
    return (f"\nmodel.update(init_cfg=dict(type='Pretrained', "
            f"checkpoint={checkpoint!r}))\n")


def one_error_line(result, message):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith('error:'), lines
    assert message in lines[0], lines[0]


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
    # any metric: summary and differences keyed by its short name
    seg = summarise([dict(r, mIoU=r['bbox_mAP']) for r in runs], ['a', 'b'],
                    metric='mIoU')
    assert seg['summary'][0]['mIoU_mean'] == pytest.approx(0.45)
    assert seg['differences'][0]['ci95'] == pytest.approx([lo, hi])


def test_expected_metric_keys_and_no_detections():
    keys = expected_metric_keys(dict(type='CocoMetric',
                                     metric=['bbox', 'segm']))
    assert 'coco/bbox_mAP' in keys and 'coco/segm_mAP_75' in keys
    assert expected_metric_keys([dict(type='mmseg.IoUMetric')]) == [
        'aAcc', 'mAcc', 'mIoU']
    assert expected_metric_keys(dict(type='Accuracy', topk=(1, 5))) == [
        'accuracy/top1', 'accuracy/top5']
    assert expected_metric_keys(dict(type='SomethingElse')) is None
    # CocoMetric returns nothing when no image has a detection: zeros + flag
    metrics, empty = complete_metrics({}, dict(type='CocoMetric'))
    assert empty and metrics['coco/bbox_mAP'] == 0.0
    metrics, empty = complete_metrics({'coco/bbox_mAP': 0.3},
                                      dict(type='CocoMetric'))
    assert not empty and metrics == {'coco/bbox_mAP': 0.3}
    assert first_difference({'a': {'b': 1, 'c': [1]}},
                            {'a': {'b': 1, 'c': [2]}}) == 'a.c: [1] -> [2]'
    assert first_difference({'x': 1}, {'x': 1}) is None


# a 3-iteration detector scores below the default 0.05 everywhere (mAP 0 for
# every run: mean and difference of zeros); every score kept, it detects
DETECT = 'model.test_cfg.score_thr=0.0'


def check_report(report, configs, seeds, world_size=1, detecting=False):
    assert set(report) == {'runs', 'summary', 'differences'}
    if detecting:  # the numbers below are checked on non-zero values
        assert all(r['bbox_mAP'] > 0 and not r['no_detections']
                   for r in report['runs']), [r['bbox_mAP']
                                              for r in report['runs']]
        assert len({r['bbox_mAP'] for r in report['runs']}) > 1
    assert len(report['runs']) == len(configs) * len(seeds)
    for r in report['runs']:
        for key in ('config', 'seed', 'bbox_mAP', 'bbox_mAP_50',
                    'bbox_mAP_75', 'train_seconds', 'final_loss',
                    'loss_curve', 'metrics', 'versions', 'run_id',
                    'no_detections'):
            assert key in r, key
        assert r['world_size'] == world_size
        assert r['metrics']['coco/bbox_mAP'] == r['bbox_mAP']
        assert 'coco/bbox_mAP_s' in r['metrics']  # every metric recorded
        assert r['versions']['mmdet'] and r['versions']['torch']
        assert r['train_seconds'] > 0
    assert [s['config'] for s in report['summary']] == configs
    for s in report['summary']:
        maps = [r['bbox_mAP'] for r in report['runs']
                if r['config'] == s['config']]
        mean, std = mean_std(maps)
        assert s['n'] == len(seeds)
        assert s['bbox_mAP_mean'] == pytest.approx(mean)
        if len(seeds) > 1:
            assert s['bbox_mAP_std'] == pytest.approx(std)
    by = {(r['config'], r['seed']): r['bbox_mAP'] for r in report['runs']}
    for d in report['differences']:
        diffs = [by[(d['config'], s)] - by[(configs[0], s)] for s in seeds]
        assert d['bbox_mAP_diff_mean'] == pytest.approx(sum(diffs) /
                                                        len(diffs))


def test_study_end_to_end_resume_and_identity(tmp_path, shapes, pretrained):
    # the configs are copies, so that the test can edit one between calls;
    # each starts from its short-trained checkpoint: it detects something
    plain = tmp_path / 'plain.py'
    plain.write_text(open(PLAIN).read() + starting_from(pretrained['plain']))
    acb = tmp_path / 'acb.py'
    acb.write_text(open(ACB).read().replace(
        "'./retinanet_fcnresnet18_fpn_shapes.py'", f"'{PLAIN}'")
        + starting_from(pretrained['acb']))
    work = tmp_path / 'study'
    args = [str(plain), str(acb), '--seeds', '0', '1', '--work-dir',
            str(work), '--cfg-options', *tiny_options(shapes), DETECT]
    first = run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'run 4/4' in first.stdout and 'ETA' in first.stdout
    report = json.load(open(work / 'compare.json'))
    check_report(report, ['plain', 'acb'], [0, 1], detecting=True)
    for r in report['runs']:
        assert [p[0] for p in r['loss_curve']] == [1, 2, 3]
    assert (work / 'compare.png').stat().st_size > 10_000
    assert '95% CI' in (work / 'compare.md').read_text()
    # the seed reaches the run's config
    dumped = (work / 'acb' / 'seed_1' / 'config.py').read_text()
    assert 'seed=1' in dumped.replace(' ', '')

    # the same call again: nothing retrained, the same report
    stamps = {p: p.stat().st_mtime for p in work.glob('*/seed_*/result.json')}
    assert len(stamps) == 4
    second = run(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert '4 already done, 0 to train' in second.stdout
    assert {p: p.stat().st_mtime for p in stamps} == stamps
    assert json.load(open(work / 'compare.json')) == report

    # another option, or an edited config file: refused with the first
    # differing key, and nothing of the study changes
    changed = run(*[a.replace('max_iters=3', 'max_iters=4') for a in args])
    one_error_line(changed, 'train_cfg.max_iters: 3 -> 4')
    acb.write_text(acb.read_text() + "\nmodel.update(dict(backbone=dict("
                   "acb_gamma_init=0.5)))\n")
    edited = run(*args)
    one_error_line(edited, 'model.backbone.acb_gamma_init: 1.0 -> 0.5')
    assert {p: p.stat().st_mtime for p in stamps} == stamps

    check_reevaluation(tmp_path, work, report)


def check_reevaluation(tmp_path, work, report):
    """tools/reevaluate.py: the study's checkpoints on another val set, no
    training; reused when called again; other options or bad input refused
    in one line."""
    tool = osp.join(ROOT, 'tools', 'reevaluate.py')
    other = tmp_path / 'other_val'
    make_shapes_dataset(str(other), 1, 5, 96, seed=9, progress=False)
    root = str(other) + '/'
    options = [f'val_dataloader.dataset.data_root={root}',
               f'val_evaluator.ann_file={root}annotations/val.json']
    out = tmp_path / 'val_other'
    args = [str(work), '--out-dir', str(out), '--cfg-options', *options]
    first = run(*args, tool=tool)
    assert first.returncode == 0, first.stderr[-3000:]
    again = json.load(open(out / 'compare.json'))
    assert [(r['config'], r['seed']) for r in again['runs']] == \
        [(r['config'], r['seed']) for r in report['runs']]
    for old, new in zip(report['runs'], again['runs']):
        assert new['evaluated_with'] == {
            'val_dataloader.dataset.data_root': root,
            'val_evaluator.ann_file': f'{root}annotations/val.json'}
        # the training record stays, the metrics are the new evaluation's
        assert new['train_seconds'] == old['train_seconds']
        assert new['loss_curve'] == old['loss_curve']
        assert new['checkpoint'] == old['checkpoint']
        assert new['bbox_mAP'] == new['metrics']['coco/bbox_mAP']
        log = open(glob.glob(str(out / new['config'] / f'seed_{new["seed"]}'
                                 / '*' / '*.log'))[0]).read()
        assert f'Load checkpoint from {old["checkpoint"]}' in log
        assert f'{root}annotations/val.json' in log
        assert 'Iter(train)' not in log
    check_report(again, ['plain', 'acb'], [0, 1], detecting=True)
    stamps = {p: p.stat().st_mtime for p in out.glob('*/seed_*/result.json')}
    assert len(stamps) == 4
    second = run(*args, tool=tool)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {p: p.stat().st_mtime for p in stamps} == stamps
    changed = run(*args, 'val_dataloader.batch_size=1', tool=tool)
    one_error_line(changed, 'first difference: val_dataloader.batch_size')
    one_error_line(run(str(tmp_path / 'nothing'), '--out-dir', str(out),
                       '--cfg-options', *options, tool=tool),
                   'compare.json not found')
    one_error_line(run(str(work), '--out-dir', str(work), '--cfg-options',
                       *options, tool=tool), 'must not be the study')
    assert {p: p.stat().st_mtime for p in stamps} == stamps


def test_interrupted_run_resumes_and_adds_its_time(tmp_path, shapes):
    """A run stopped after its iteration-3 checkpoint (as a crash or a
    killed job) resumes there on the next call: its loss curve covers every
    iteration once and its training time adds both parts."""
    work, probe = tmp_path / 'study', tmp_path / 'probe'
    options = tiny_options(shapes, iters=6) + [
        'default_hooks.checkpoint.interval=3']
    config = probe_config(tmp_path / 'cfg', PLAIN, probe, stop_at=4)
    args = [config, '--seeds', '5', '--work-dir', str(work),
            '--cfg-options', *options]
    first = run(*args)
    assert first.returncode == 1, first.stderr[-3000:]
    assert 'failed (exit 17)' in first.stderr
    run_dir = work / 'retinanet_fcnresnet18_fpn_shapes' / 'seed_5'
    assert (run_dir / 'iter_3.pth').exists()
    assert not (run_dir / 'result.json').exists()
    meta = safe_load(run_dir / 'iter_3.pth')['meta']
    before = meta['study']['train_seconds']
    assert before > 0 and [p[0] for p in meta['study']['loss_curve']] == [
        1, 2, 3]
    second = run(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert '0 already done, 1 to train' in second.stdout
    log = (run_dir / 'train.log').read_text()
    assert 'Resuming' in log or 'resumed' in log.lower()
    result = json.load(open(run_dir / 'result.json'))
    assert [p[0] for p in result['loss_curve']] == [1, 2, 3, 4, 5, 6]
    assert result['train_seconds'] > before
    assert result['iterations'] == 6
    # iterations 4-6 trained twice in all (4 before the stop), 1-3 once
    steps = [int(line.split()[0]) for line in
             (probe / 'rank0.txt').read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 4, 5, 6]


def coco_one_epoch(data, images=96):
    """A shipped COCO config (epoch-based, 12 epochs, ResNet-50) as a
    one-epoch run on the small shapes set."""
    return data_options(data) + [
        'train_cfg.max_epochs=1', 'model.backbone.init_cfg=None',
        'train_dataloader.dataset.ann_file=annotations/train.json',
        'train_dataloader.dataset.data_prefix.img=train/',
        'val_dataloader.dataset.ann_file=annotations/val.json',
        'val_dataloader.dataset.data_prefix.img=val/',
        'model.bbox_head.num_classes=4',
        "train_dataloader.dataset.metainfo.classes=['rectangle','ellipse',"
        "'triangle','cross']",
        "val_dataloader.dataset.metainfo.classes=['rectangle','ellipse',"
        "'triangle','cross']",
        f'train_dataloader.dataset.pipeline.2.scale=({images},{images})',
        f'val_dataloader.dataset.pipeline.1.scale=({images},{images})',
        'default_hooks.checkpoint.interval=1',
        'model.backbone.base_channels=8',
        'model.neck.in_channels=[32,64,128,256]',
        'model.neck.out_channels=32', 'model.bbox_head.in_channels=32',
        'model.bbox_head.feat_channels=32',
    ]


def test_epoch_based_shipped_configs(tmp_path, shapes):
    configs = [osp.join(COCO, 'retinanet_fcnresnet50_fpn_1x_coco.py'),
               osp.join(COCO, 'retinanet_acresnet50_fpn_1x_coco.py')]
    work = tmp_path / 'coco'
    result = run(*configs, '--seeds', '0', '--work-dir', str(work),
                 '--cfg-options', *coco_one_epoch(shapes))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(work / 'compare.json'))
    check_report(report, ['retinanet_fcnresnet50_fpn_1x_coco',
                          'retinanet_acresnet50_fpn_1x_coco'], [0])
    for r in report['runs']:
        assert r['schedule'] == dict(length=1, unit='epoch')
        assert r['iterations'] == 3  # 6 images, batch 2
        assert r['checkpoint'].endswith('epoch_1.pth')
        assert [p[0] for p in r['loss_curve']] == [1, 2, 3]


def test_pytorch_launcher_two_processes_on_cpu(tmp_path, shapes):
    """2 configs x 2 seeds, each run a torchrun of 2 CPU processes (gloo):
    both ranks train, each on its half of the batches."""
    probe = tmp_path / 'probe'
    work = tmp_path / 'dist'
    configs = [probe_config(tmp_path / 'cfg', c, probe) for c in (PLAIN, ACB)]
    result = run(*configs, '--seeds', '0', '1', '--work-dir', str(work),
                 '--launcher', 'pytorch', '--gpus', '2', '--cfg-options',
                 *tiny_options(shapes, iters=2))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(work / 'compare.json'))
    check_report(report, ['retinanet_fcnresnet18_fpn_shapes',
                          'retinanet_acresnet18_fpn_shapes'], [0, 1],
                 world_size=2)
    log = (work / 'retinanet_acresnet18_fpn_shapes' / 'seed_1' /
           'train.log').read_text()
    assert 'Distributed training: True' in log and 'torch.distributed.run' \
        in log
    # 4 runs x 2 iterations on each rank, every batch distinct between ranks
    ranks = [(probe / f'rank{r}.txt').read_text().splitlines()
             for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 8
    for a, b in zip(*ranks):
        assert a.split()[1] == b.split()[1] == '2'
        assert set(a.split()[2:]).isdisjoint(b.split()[2:])


def test_dist_train_sh_on_cpu_then_test_tool(tmp_path, shapes):
    """tools/dist_train.sh with 2 ranks on a machine without CUDA; the
    checkpoint loads into tools/test.py."""
    probe, work = tmp_path / 'probe', tmp_path / 'w'
    from acnet_backbone.study.api import _free_port
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()),
               PYTHONPATH=TESTS + os.pathsep + os.environ.get('PYTHONPATH',
                                                               ''))
    config = probe_config(tmp_path / 'cfg', PLAIN, probe)
    result = subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config, '2',
         '--work-dir', str(work), '--cfg-options',
         *tiny_options(shapes, iters=4)],
        capture_output=True, text=True, cwd=ROOT, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next(work.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    ranks = [(probe / f'rank{r}.txt').read_text().splitlines()
             for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 4  # each rank: every iteration
    seen = [set(), set()]
    for r, lines in enumerate(ranks):
        for line in lines:
            assert line.split()[1] == '2'
            seen[r].update(line.split()[2:])
    for a, b in zip(*ranks):  # the same step never shares an image
        assert set(a.split()[2:]).isdisjoint(b.split()[2:])
    ckpt = work / 'iter_4.pth'
    assert ckpt.exists()
    test = run(PLAIN, str(ckpt), '--work-dir', str(tmp_path / 't'),
               '--cfg-options', *tiny_options(shapes, iters=4),
               tool=osp.join(ROOT, 'tools', 'test.py'))
    assert test.returncode == 0, test.stderr[-3000:]
    out = test.stdout + test.stderr
    assert f'Load checkpoint from {ckpt}' in out and 'Iter(test)' in out


def compare_main():
    import importlib.util
    spec = importlib.util.spec_from_file_location('compare_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_bad_inputs_one_line_nothing_trained(tmp_path, shapes, capsys):
    work = tmp_path / 'w'
    no_loop = tmp_path / 'no_loop.py'
    no_loop.write_text(f"_base_ = '{PLAIN}'\ntrain_cfg = dict(_delete_=True,"
                       " type='IterBasedTrainLoop')\n")
    no_eval = tmp_path / 'no_eval.py'
    no_eval.write_text(f"_base_ = '{PLAIN}'\nval_evaluator = None\n")
    wrapped = tmp_path / 'wrapped.py'  # mmengine's dataset wrappers
    wrapped.write_text(
        f"_base_ = '{PLAIN}'\ntrain_dataloader = dict(dataset=dict("
        "_delete_=True, type='ConcatDataset', datasets=[dict("
        "type='RepeatDataset', times=2, dataset=dict(type='CocoDataset', "
        f"data_root='{tmp_path}/x/', ann_file='a.json'))]))\n")
    opts = tiny_options(shapes)
    cases = [
        ([PLAIN, ACB, '--seeds', '0', '0'], 'repeats a seed'),
        ([str(tmp_path / 'nope.py'), '--seeds', '0'], 'config not found'),
        ([PLAIN, PLAIN, '--seeds', '0'], 'share a name'),
        ([PLAIN, '--seeds', '0', '--cfg-options',
          f'train_dataloader.dataset.data_root={tmp_path}/none/'],
         'dataset of'),
        ([str(wrapped), '--seeds', '0', '--cfg-options', *opts[1:]],
         f'{tmp_path}/x/a.json is missing'),
        ([str(no_loop), '--seeds', '0', '--cfg-options',
          *data_options(shapes)],
         'no training loop'),
        ([str(no_eval), '--seeds', '0', '--cfg-options',
          *[o for o in opts if not o.startswith('val_evaluator')]],
         'has no val_evaluator'),
        ([PLAIN, '--seeds', '0', '--metric', 'mIoU', '--cfg-options', *opts],
         "does not return 'mIoU' (it returns: coco/bbox_mAP"),
        ([PLAIN, '--seeds', '0', '--launcher', 'pytorch', '--gpus',
          str((os.cpu_count() or 1) + 1), '--cfg-options', *opts]
         if not torch.cuda.is_available() else
         [PLAIN, '--seeds', '0', '--launcher', 'pytorch', '--gpus',
          str(torch.cuda.device_count() + 1), '--cfg-options', *opts],
         '--gpus'),
        ([PLAIN, '--seeds', '0', '--gpus', '2', '--cfg-options', *opts],
         'needs --launcher pytorch or slurm'),
    ]
    if shutil.which('srun') is None:
        cases.append(([PLAIN, '--seeds', '0', '--launcher', 'slurm',
                       '--cfg-options', *opts], 'srun not found'))
    main = compare_main()  # in this process: the checks train nothing
    for args, message in cases:
        code = main([*args, '--work-dir', str(work)])
        err = capsys.readouterr().err
        one_error_line(subprocess.CompletedProcess(args, code, '', err),
                       message)
        assert not work.exists(), args  # nothing trained, nothing written


def test_study_errors_are_exceptions():
    from acnet_backbone.study import run_study
    with pytest.raises(StudyError, match='repeats a seed'):
        run_study([PLAIN], [1, 1], '/nonexistent/w')


def test_a_failed_run_names_its_root_cause(tmp_path):
    """The one-line error of a failed torchrun names the failing rank, its
    exit code or signal and the last exception of that attempt (not
    torchrun's closing rule, nor an earlier attempt's error)."""
    from acnet_backbone.study.api import _failure_line
    log = tmp_path / 'train.log'
    log.write_text(
        '\n$ python -m torch.distributed.run ...\nKeyError: old attempt\n'
        '\n$ python -m torch.distributed.run ...\nTraceback (most recent '
        'call last):\n  File "x.py", line 1\nRuntimeError: Connection reset '
        'by peer\n' + '=' * 60 + '\nworker FAILED\n' + '-' * 60 +
        '\nFailures:\n  <NO_OTHER_FAILURES>\n' + '-' * 60 +
        '\nRoot Cause (first observed failure):\n[0]:\n  time      : now\n'
        '  host      : h\n  rank      : 1 (local_rank: 1)\n'
        '  exitcode  : 1 (pid: 7)\n  error_file: <N/A>\n  traceback : To '
        'enable traceback see: https://pytorch.org/docs\n' + '=' * 60 +
        '\ntorch.distributed.elastic.multiprocessing.errors.ChildFailedError:'
        '\n')
    line = _failure_line(str(log))
    assert line.startswith('rank : 1 (local_rank: 1); exitcode : 1 (pid: 7)')
    assert line.endswith('RuntimeError: Connection reset by peer')
    assert 'old attempt' not in line
    log.write_text('\n$ python -m acnet_backbone.study.worker d\nstep 1\n'
                   'ValueError: bad value\nlast words\n')
    assert _failure_line(str(log)) == 'ValueError: bad value'
    log.write_text('\n$ cmd\nonly this\n')
    assert _failure_line(str(log)) == 'only this'
    assert _failure_line(str(tmp_path / 'missing.log')) == ''
