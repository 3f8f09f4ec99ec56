"""The fuse-and-export chain on a RetinaNet-ACResNet50 checkpoint with
randomised BN statistics, and every bad input refused with nothing written."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from acnet_backbone.deploy.checkpoint import (FuseError, _build_detector,
                                              fuse_checkpoint)
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
    model = _build_detector(cfg)
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


CHECK_STOCK = r'''
import sys, builtins
real_import = builtins.__import__
def guarded(name, *a, **k):
    if name.split('.')[0] == 'acnet_backbone':
        raise ImportError('acnet_backbone is blocked')
    return real_import(name, *a, **k)
builtins.__import__ = guarded
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
    model = _build_detector(Config.fromfile(CONFIG))
    model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'])
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
    sd = torch.load(ckpt, weights_only=True)['state_dict']
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


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes anywhere')
def test_read_only_output_folder(trained):
    ckpt, tmp = trained
    ro = tmp / 'readonly'
    ro.mkdir(exist_ok=True)
    os.chmod(ro, 0o500)
    result = run_tool(CONFIG, ckpt, '--out-dir', str(ro), '--no-analysis')
    assert result.returncode == 2 and 'not writable' in result.stderr
    assert os.listdir(ro) == []


def test_output_folder_is_a_file(trained):
    ckpt, tmp = trained
    blocker = tmp / 'a_file'
    blocker.write_text('x')
    result = run_tool(CONFIG, ckpt, '--out-dir', str(blocker), '--no-analysis')
    assert result.returncode == 2 and 'is a file' in result.stderr
    assert blocker.read_text() == 'x'


def test_failed_verification_writes_nothing(trained, monkeypatch):
    ckpt, tmp = trained
    from acnet_backbone.deploy import checkpoint as ck

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
