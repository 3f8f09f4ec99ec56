"""acnet_backbone.training: the entry point of tools/train.py, the study's
runs and the demo (schedule rescaling, CPU distributed set-up), and the
slurm launcher of the study through a stand-in ``srun``."""
import json
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest
from mmengine.config import Config

from acnet_backbone.datasets import make_shapes_dataset
from acnet_backbone.study import launch_command
from acnet_backbone.training import (schedule_length, set_iterations,
                                     setup_distributed, train_and_evaluate)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PLAIN = osp.join(ROOT, 'configs', 'shapes',
                 'retinanet_fcnresnet18_fpn_shapes.py')


def tiny(cfg, data, work_dir):
    root = f'{data}/'
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': f'{root}annotations/val.json',
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'model.backbone.base_channels': 8,
        'model.neck.in_channels': [8, 16, 32, 64],
    })
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.parametrize('iters', [1, 3, 49, 3000])
def test_set_iterations_rescales_every_scheduler(iters):
    cfg = Config.fromfile(PLAIN)
    set_iterations(cfg, iters)
    assert schedule_length(cfg) == (iters, 'iter')
    assert cfg.default_hooks.checkpoint.interval == iters
    warm, cosine = cfg.param_scheduler
    for sched in (warm, cosine):
        assert 0 <= sched.begin < sched.end <= iters
    assert cosine.end == iters and cosine.T_max == cosine.end - cosine.begin
    with pytest.raises(ValueError, match='positive'):
        set_iterations(cfg, 0)


def test_shorter_than_warmup_trains_and_evaluates(tmp_path):
    """The demo's --max-iters below the 50-iteration warm-up: trains,
    evaluates, returns every metric (the case that failed inside mmengine's
    scheduler)."""
    data = tmp_path / 'data'
    make_shapes_dataset(str(data), 4, 2, 96, seed=1, progress=False)
    cfg = tiny(Config.fromfile(PLAIN), data, tmp_path / 'w')
    set_iterations(cfg, 2)
    # a 2-iteration detector scores below the default 0.05 everywhere, and
    # mmdet's CocoMetric returns no metric at all for no detection
    cfg.model.test_cfg.score_thr = 0.0
    runner, metrics = train_and_evaluate(cfg)
    assert runner.iter == 2 and (tmp_path / 'w' / 'iter_2.pth').exists()
    # every COCO bbox metric, as numbers (an empty dict would pass an
    # all-floats check alone)
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50'} <= set(metrics), metrics
    assert all(isinstance(v, float) for v in metrics.values())


def test_setup_distributed_cpu_only(monkeypatch):
    cfg = Config(dict(launcher='none'))
    setup_distributed(cfg)
    assert 'model_wrapper_cfg' not in cfg  # nothing for one process
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    monkeypatch.setattr('torch.distributed.is_initialized', lambda: True)
    cfg = Config(dict(launcher='pytorch', model_wrapper_cfg=dict(
        find_unused_parameters=True)))
    setup_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', find_unused_parameters=True,
        broadcast_buffers=False, device_ids=None)


FAKE_SRUN = r'''#!/usr/bin/env python
# A stand-in for Slurm's srun on one machine: starts --ntasks copies of the
# command with the variables srun gives each task.
import os, socket, subprocess, sys
args = sys.argv[1:]
ntasks = 1
while args and args[0].startswith('-'):
    opt = args.pop(0)
    if opt.startswith('--ntasks='):
        ntasks = int(opt.split('=', 1)[1])
with open(os.environ['FAKE_SRUN_LOG'], 'a') as f:
    f.write(' '.join(sys.argv[1:]) + '\n')
with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
procs = [subprocess.Popen(args, env=dict(
    os.environ, SLURM_PROCID=str(i), SLURM_NTASKS=str(ntasks),
    SLURM_LOCALID=str(i), SLURM_NODELIST='localhost',
    MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))) for i in range(ntasks)]
sys.exit(max(p.wait() for p in procs))
'''


def test_slurm_launcher_runs_a_study(tmp_path):
    """--launcher slurm --gpus 2: one srun of 2 tasks per run, each task a
    rank of mmengine's slurm launch (gloo on CPU)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN.replace('#!/usr/bin/env python',
                                      f'#!{sys.executable}'))
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    data = tmp_path / 'data'
    make_shapes_dataset(str(data), 4, 2, 96, seed=2, progress=False)
    root = f'{data}/'
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
               FAKE_SRUN_LOG=str(tmp_path / 'srun.log'), GPUS_PER_NODE='0',
               SRUN_ARGS='--partition=cpu')
    result = subprocess.run([
        sys.executable, osp.join(ROOT, 'tools', 'compare.py'), PLAIN,
        '--seeds', '3', '--work-dir', str(tmp_path / 'w'), '--launcher',
        'slurm', '--gpus', '2', '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/val.json',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'model.backbone.base_channels=8', 'model.neck.in_channels=[8,16,32,64]',
        'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2'
    ], capture_output=True, text=True, cwd=ROOT, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (call, ) = (tmp_path / 'srun.log').read_text().splitlines()
    assert '--ntasks=2' in call and '--partition=cpu' in call
    assert '--gres' not in call and '--launcher slurm' in call
    report = json.load(open(tmp_path / 'w' / 'compare.json'))
    (run, ) = report['runs']
    assert run['world_size'] == 2 and run['launcher'] == 'slurm'
    assert launch_command('/r', 'slurm', 8)[0] == 'srun'
