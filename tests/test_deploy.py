"""The fuse-and-export chain on a RetinaNet-ACResNet50 checkpoint with
randomised BN statistics, and every bad input refused with nothing written."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from acnet_backbone.deploy.checkpoint import (FuseError, build_detector,
                                              fuse_checkpoint)
from acnet_backbone.deploy.staging import check_out_dir, staged_outputs
from acnet_backbone.safe_load import safe_load
from acnet_backbone.testing import import_blocker
from conftest import randomize_bn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'acnet', 'retinanet_acresnet50_fpn_1x_coco.py')
TOOL = osp.join(ROOT, 'tools', 'fuse.py')
SHAPE = (128, 160)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A RetinaNet-ACResNet50 'trained' checkpoint: random weights, random BN
    statistics and branch gammas, mmengine-style numpy meta."""
    import numpy as np
    tmp = tmp_path_factory.mktemp('deploy')
    cfg = Config.fromfile(CONFIG)
    model = build_detector(cfg)
    randomize_bn(model, seed=5)
    path = tmp / 'trained.pth'
    torch.save(dict(meta=dict(epoch=12, seed=np.int64(3),
                              dataset_meta=dict(classes=('a', 'b'))),
                    state_dict=model.state_dict()), path)
    return str(path), tmp


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_full_chain(trained):
    ckpt, tmp = trained
    out = tmp / 'fused'
    result = run_tool(CONFIG, ckpt, '--out-dir', str(out), '--onnx',
                      '--shape', *map(str, SHAPE), '--no-analysis')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'max rel err' in result.stdout
    assert sorted(os.listdir(out)) == ['fused.onnx', 'fused.pth',
                                       'fused_config.py']
    # stock torch, no allow-list: plain meta
    ckpt_out = torch.load(out / 'fused.pth', weights_only=True)
    assert ckpt_out['meta']['seed'] == 3
    assert not any('.acb.' in k for k in ckpt_out['state_dict'])
    # rerun without --force refuses and keeps the files
    mtime = os.path.getmtime(out / 'fused.pth')
    again = run_tool(CONFIG, ckpt, '--out-dir', str(out), '--no-analysis',
                     '--shape', *map(str, SHAPE))
    assert again.returncode != 0 and '--force' in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert os.path.getmtime(out / 'fused.pth') == mtime


CHECK_STOCK = import_blocker('acnet_backbone') + r'''
import sys
import torch
from mmengine.config import Config
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
register_all_modules()
cfg = Config.fromfile(sys.argv[1])
assert cfg.model.backbone.type == 'ResNet' and 'custom_imports' not in cfg
model = MODELS.build(cfg.model).eval()
sd = torch.load(sys.argv[2], weights_only=True)['state_dict']
model.load_state_dict(sd, strict=True)
x = torch.load(sys.argv[3], weights_only=True)
with torch.no_grad():
    out = model(x, mode='tensor')
torch.save([t for level in out for t in level], sys.argv[4])
'''


def test_fused_files_run_without_the_plugin(trained):
    ckpt, tmp = trained
    out = tmp / 'fused_noplugin'
    fuse_checkpoint(CONFIG, ckpt, str(out), shape=SHAPE, analyze=False)
    x = torch.randn(1, 3, *SHAPE)
    torch.save(x, tmp / 'x.pth')
    script = tmp / 'check_stock.py'
    script.write_text(CHECK_STOCK)
    result = subprocess.run(
        [sys.executable, str(script), str(out / 'fused_config.py'),
         str(out / 'fused.pth'), str(tmp / 'x.pth'), str(tmp / 'y.pth')],
        capture_output=True, text=True, cwd=str(tmp), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    got = torch.load(tmp / 'y.pth', weights_only=True)
    model = build_detector(Config.fromfile(CONFIG))
    model.load_state_dict(safe_load(ckpt)['state_dict'])
    with torch.no_grad():
        ref = [t for level in model.eval()(x, mode='tensor') for t in level]
    scale = max(r.abs().max() for r in ref)
    assert max((g - r).abs().max() for g, r in zip(got, ref)) / scale < 1e-4


class _Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


def _bad_inputs(tmp, ckpt):
    """(name, args for the tool, expected message part)."""
    missing = str(tmp / 'nope.pth')
    garbage = tmp / 'garbage.pth'
    garbage.write_bytes(b'this is not a checkpoint')
    evil = tmp / 'evil.pth'
    torch.save({'state_dict': {'x': _Hostile(str(tmp / 'pwned'))}}, evil)
    wrong = tmp / 'wrong.pth'
    sd = safe_load(ckpt)['state_dict']
    sd.pop('backbone.conv1.weight')
    sd['extra.weight'] = torch.zeros(1)
    torch.save({'state_dict': sd}, wrong)
    plain_cfg = osp.join(ROOT, 'configs', 'acnet',
                         'retinanet_fcnresnet50_fpn_1x_coco.py')
    blocker = tmp / 'blocker_file'
    blocker.write_text('x')
    return [
        ('missing checkpoint', [CONFIG, missing], 'not found'),
        ('missing config', [str(tmp / 'nope.py'), ckpt], 'not found'),
        ('not a checkpoint', [CONFIG, str(garbage)], 'not a readable checkpoint'),
        ('hostile pickle', [CONFIG, str(evil)], 'not allow-listed'),
        ('nothing to fuse', [plain_cfg, ckpt], 'nothing to fuse'),
        ('mismatch', [CONFIG, str(wrong)],
         'missing (first: backbone.conv1.weight)'),
        ('uncreatable', [CONFIG, ckpt, '--out-dir', str(blocker / 'sub')],
         'cannot be created'),
    ]


def test_bad_inputs_refused_with_nothing_written(trained):
    ckpt, tmp = trained
    for name, args, message in _bad_inputs(tmp, ckpt):
        if '--out-dir' not in args:
            args = args + ['--out-dir', str(tmp / f'out_{name.replace(" ", "_")}')]
        result = run_tool(*args, '--shape', *map(str, SHAPE), '--no-analysis')
        assert result.returncode == 2, (name, result.stderr[-1500:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error:'), (name, lines)
        assert message in lines[0], (name, lines[0])
        out_dir = args[args.index('--out-dir') + 1]
        assert not osp.exists(out_dir) or not [
            f for f in os.listdir(out_dir) if not f.startswith('.')], name
    assert not (tmp / 'pwned').exists()


def test_unwritable_output_folder_is_refused(trained, monkeypatch):
    """Also under root (which may write into a read-only folder): a folder
    below a regular file is refused before any work, and a staging folder
    that cannot be made is one error with nothing left behind."""
    ckpt, tmp = trained
    blocker = tmp / 'plain_file'
    blocker.write_text('x')
    with pytest.raises(FuseError, match='cannot be created'):
        check_out_dir(str(blocker / 'out'), ['a'], False)
    result = run_tool(CONFIG, ckpt, '--out-dir', str(blocker / 'out' / 'x'),
                      '--no-analysis', '--shape', *map(str, SHAPE))
    assert result.returncode == 2 and 'cannot be created' in result.stderr
    assert blocker.read_text() == 'x'

    from types import SimpleNamespace

    import tempfile

    from acnet_backbone import staging

    def refuse(*args, **kwargs):
        raise PermissionError(13, 'Permission denied')

    # only the staging helper's mkdtemp fails (mmengine's Config uses one too)
    monkeypatch.setattr(staging, 'tempfile', SimpleNamespace(
        mkdtemp=refuse, mkstemp=tempfile.mkstemp))
    out = tmp / 'unwritable'
    with pytest.raises(FuseError, match='not writable .Permission denied.'):
        fuse_checkpoint(CONFIG, ckpt, str(out), shape=SHAPE, analyze=False)
    assert not out.exists()


def test_staged_outputs_all_or_nothing(tmp_path):
    out = tmp_path / 'new' / 'out'
    with pytest.raises(ValueError):
        with staged_outputs(str(out), ['a.txt', 'b.txt']) as stage:
            open(os.path.join(stage, 'a.txt'), 'w').write('a')
            raise ValueError('failed half way')
    assert not out.exists()
    keep = tmp_path / 'keep'
    keep.mkdir()
    (keep / 'a.txt').write_text('old')
    with pytest.raises(RuntimeError, match='b.txt was not written'):
        with staged_outputs(str(keep), ['a.txt', 'b.txt']) as stage:
            open(os.path.join(stage, 'a.txt'), 'w').write('new')
    assert os.listdir(keep) == ['a.txt'] and (keep / 'a.txt').read_text() == \
        'old'
    with staged_outputs(str(keep), ['a.txt', 'b.txt']) as stage:
        for name in ('a.txt', 'b.txt', 'scratch.tmp'):
            open(os.path.join(stage, name), 'w').write('new')
    assert sorted(os.listdir(keep)) == ['a.txt', 'b.txt']
    assert (keep / 'a.txt').read_text() == 'new'


def test_output_folder_is_a_file(trained):
    ckpt, tmp = trained
    blocker = tmp / 'a_file'
    blocker.write_text('x')
    result = run_tool(CONFIG, ckpt, '--out-dir', str(blocker), '--no-analysis')
    assert result.returncode == 2 and 'is a file' in result.stderr
    assert blocker.read_text() == 'x'


def test_failed_verification_writes_nothing(trained, monkeypatch):
    ckpt, tmp = trained
    from acnet_backbone.deploy import core as ck

    real = ck.fuse_model

    def broken(model, inplace=False):
        fused = real(model, inplace)
        with torch.no_grad():
            fused.backbone.layer1[0].conv2.weight.mul_(1.5)
        return fused

    monkeypatch.setattr(ck, 'fuse_model', broken)
    out = tmp / 'never'
    with pytest.raises(FuseError, match='verification failed'):
        fuse_checkpoint(CONFIG, ckpt, str(out), shape=SHAPE, analyze=False)
    assert not out.exists()  # verification failed before any folder was made


def test_complexity_analysis_as_the_tool_runs_it(trained):
    """tools/fuse.py counts parameters and FLOPs by default: fewer of both
    after fusion, the fused count that of the stock detector it wrote."""
    import json
    ckpt, tmp = trained
    out = tmp / 'analysed'
    result = run_tool(CONFIG, ckpt, '--out-dir', str(out), '--shape',
                      *map(str, SHAPE), '--json', str(tmp / 'analysed.json'))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.load(open(tmp / 'analysed.json'))
    before, after = report['before'], report['after']
    assert before['params'] > after['params'] > 0
    assert before['flops'] > after['flops'] > 0
    stock = build_detector(Config.fromfile(str(out / 'fused_config.py')))
    assert after['params'] == sum(p.numel() for p in stock.parameters())
    assert f'parameters {before["params"]:,} -> {after["params"]:,}' in \
        result.stdout
