"""Pretraining with mmpretrain and fine-tuning in mmdet: configs, ACB tensors
carried over, mismatches refused in one line, the embedded journey's steps."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import acnet_backbone  # noqa: F401
from acnet_backbone.backbones import PretrainedMismatchError
from acnet_backbone.safe_load import safe_load
from acnet_backbone.datasets import (make_shapes_cls_dataset,
                                     make_shapes_dataset)
from conftest import log_lines, randomize_bn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN = sorted(glob.glob(osp.join(ROOT, 'configs', 'pretrain', '*.py')))
SMALL = dict(base_channels=16, stem_channels=16)


def build_classifier(cfg):
    """Build under mmpretrain's scope (another test of the same worker may
    have made mmdet the default scope, as mmdet's tools do)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('path', PRETRAIN,
                         ids=lambda p: osp.relpath(p, ROOT))
def test_pretrain_configs_are_mmpretrain_classifiers(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    assert 'acnet_backbone' in cfg.custom_imports['imports']
    model = build_classifier(cfg)
    assert type(model).__name__ == 'ImageClassifier'
    assert type(model.backbone).__name__ == cfg.model.backbone.type.split(
        '.')[-1]
    size = 64
    out = model(torch.randn(2, 3, size, size), mode='tensor')
    assert out.shape == (2, cfg.model.head.num_classes)


def test_imagenet_configs_follow_acnet_recipe():
    for name in ('acresnet50-bn', 'acresnet50-online', 'fcnresnet50'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', 'pretrain',
                                       f'{name}_8xb32_in1k.py'))
        opt = cfg.optim_wrapper.optimizer
        assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == (
            'SGD', 0.1, 0.9, 1e-4)
        assert cfg.train_cfg.max_epochs == 100
        assert cfg.train_dataloader.batch_size * 8 == 256
        assert any(s.type == 'CosineAnnealingLR' for s in (
            cfg.param_scheduler if isinstance(cfg.param_scheduler, list)
            else [cfg.param_scheduler]))
        if name.startswith('acresnet'):
            assert cfg.model.backbone.acb_gamma_init == 1.0


def _save_classifier(tmp, config, **backbone):
    cfg = Config.fromfile(config)
    cfg.model.backbone.update(backbone)
    model = build_classifier(cfg)
    randomize_bn(model, seed=4)  # branch gammas included: not the init value
    path = tmp / 'cls.pth'
    torch.save(dict(meta=dict(iter=5), state_dict=model.state_dict()), path)
    return model, str(path)


@pytest.mark.parametrize('arch', ['retinanet', 'faster-rcnn'])
def test_acnet_pretrained_checkpoint_initialises_coco_detector(tmp_path, arch):
    pre = osp.join(ROOT, 'configs', 'pretrain', 'acresnet50-bn_8xb32_in1k.py')
    det = osp.join(ROOT, 'configs', 'acnet',
                   f'{arch}_acresnet50-in1k_fpn_1x_coco.py')
    assert Config.fromfile(pre).model.backbone.depth == Config.fromfile(
        det).model.backbone.depth == 50
    cls, ckpt = _save_classifier(tmp_path, pre, **SMALL)
    cfg = Config.fromfile(det)
    cfg.model.backbone.update(SMALL)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    lines = log_lines(model.backbone.init_weights)
    want = {k: v for k, v in cls.backbone.state_dict().items()}
    got = model.backbone.state_dict()
    assert set(want) == set(got)
    assert all(torch.equal(want[k], got[k]) for k in want)
    n_acb = sum('.acb.' in k for k in want)
    assert n_acb == 16 * 2 * 6  # 16 ACBs x 2 branches x (conv + 5 BN)
    mine = [r for r in lines if r.startswith('ACResNet: loaded')]
    assert len(mine) == 1, lines
    assert f'ACB branch tensors among them: {n_acb}' in mine[0]
    assert 'keep their init' not in mine[0]


def test_mismatched_classification_checkpoints_refused(tmp_path):
    from acnet_backbone import ACResNet, FCNResNet
    pre = osp.join(ROOT, 'configs', 'pretrain', 'acresnet50-bn_8xb32_in1k.py')
    _, acb_ckpt = _save_classifier(tmp_path, pre, **SMALL)
    cases = [
        (FCNResNet, dict(depth=50), 'is not in the backbone'),  # ACB -> plain
        (ACResNet, dict(depth=101), 'layer3.6'),  # depth
        (ACResNet, dict(depth=50, acb_mode='online'), 'acb'),  # mode
        (ACResNet, dict(depth=50, base_channels=8, stem_channels=8),
         'in the checkpoint'),  # widths
    ]
    # an ACB checkpoint must bring all ACB tensors, not some
    partial = tmp_path / 'partial.pth'
    sd = torch.load(acb_ckpt, weights_only=True)['state_dict']
    sd.pop('backbone.layer2.0.conv2.acb.ver_conv.weight')
    torch.save({'state_dict': sd}, partial)
    cases.append((ACResNet, dict(depth=50),
                  'layer2.0.conv2.acb.ver_conv.weight is not in the checkpoint',
                  str(partial)))
    for case in cases:
        cls, kwargs, message = case[:3]
        ckpt = case[3] if len(case) > 3 else acb_ckpt
        kwargs = dict(SMALL, **kwargs)
        net = cls(init_cfg=dict(type='Pretrained', checkpoint=ckpt,
                                prefix='backbone.'), **kwargs)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with pytest.raises(PretrainedMismatchError) as err:
            net.init_weights()
        text = str(err.value)
        assert '\n' not in text and 'nothing loaded' in text
        assert message in text, text
        after = net.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)


def _run(tool, *args, cwd):
    result = subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool),
                             *args], capture_output=True, text=True, cwd=cwd,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_journey_steps_pretrain_then_finetune(tmp_path):
    """A few iterations of each step of `make journey`: mmpretrain pretrains
    ACResNet-18 through tools/train.py, the shapes RetinaNet fine-tunes from
    it with norm_eval=True and loads every ACB tensor."""
    cls_data = tmp_path / 'cls'
    make_shapes_cls_dataset(str(cls_data), 8, 4, 32, progress=False)
    det_data = tmp_path / 'det'
    make_shapes_dataset(str(det_data), 4, 2, 96, progress=False)
    pre_work = tmp_path / 'pre'
    small = ['model.backbone.base_channels=8', 'model.head.in_channels=64']
    loaders = ['train_dataloader.batch_size=4',
               'train_dataloader.num_workers=0',
               'train_dataloader.persistent_workers=False',
               'val_dataloader.num_workers=0',
               'val_dataloader.persistent_workers=False']
    log = _run('train.py', osp.join(ROOT, 'configs', 'pretrain',
                                    'acresnet18_shapes-cls.py'),
               '--work-dir', str(pre_work), '--cfg-options',
               f'train_dataloader.dataset.data_root={cls_data}/',
               f'val_dataloader.dataset.data_root={cls_data}/',
               'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
               'default_hooks.checkpoint.interval=3', *small, *loaders,
               cwd=str(tmp_path))
    assert 'accuracy/top1' in log
    ckpt = pre_work / 'iter_3.pth'
    assert ckpt.exists()
    root = f'{det_data}/'
    det_work = tmp_path / 'det_work'
    log = _run('train.py', osp.join(ROOT, 'configs', 'shapes',
                                    'retinanet_acresnet18_fpn_shapes-ft.py'),
               '--work-dir', str(det_work), '--cfg-options',
               f'model.backbone.init_cfg.checkpoint={ckpt}',
               f'train_dataloader.dataset.data_root={root}',
               f'val_dataloader.dataset.data_root={root}',
               f'val_evaluator.ann_file={root}annotations/val.json',
               'model.backbone.base_channels=8',
               'model.neck.in_channels=[8,16,32,64]',
               'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
               'default_hooks.checkpoint.interval=2',
               'train_dataloader.batch_size=2', *loaders[1:],
               cwd=str(tmp_path))
    assert 'ACB branch tensors among them: 192' in log
    # the fine-tuned branch BNs of trainable stages moved, frozen ones did not
    pre = safe_load(ckpt)['state_dict']
    post = safe_load(det_work / 'iter_2.pth')['state_dict']
    key = 'layer{}.0.conv1.acb.hor_bn.running_mean'
    assert torch.equal(pre[f'backbone.{key.format(1)}'],
                       post[f'backbone.{key.format(1)}'])
    assert not torch.equal(pre[f'backbone.{key.format(3)}'],
                           post[f'backbone.{key.format(3)}'])
    plain = 'layer3.0.bn1.running_mean'
    assert torch.equal(pre[f'backbone.{plain}'], post[f'backbone.{plain}'])


def test_mismatch_through_train_tool_is_one_line(tmp_path):
    """tools/train.py turns a mismatched Pretrained checkpoint into one
    error line and exit 2."""
    cls_ckpt = tmp_path / 'plain18.pth'
    from acnet_backbone import FCNResNet
    net = FCNResNet(18)
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in net.state_dict().items()}},
               cls_ckpt)
    data = tmp_path / 'det'
    make_shapes_dataset(str(data), 2, 2, 96, progress=False)
    root = f'{data}/'
    result = subprocess.run([
        sys.executable, osp.join(ROOT, 'tools', 'train.py'),
        osp.join(ROOT, 'configs', 'shapes',
                 'retinanet_fcnresnet18_fpn_shapes-ft.py'),
        '--work-dir', str(tmp_path / 'w'), '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={cls_ckpt}',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={root}annotations/val.json',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False'
    ], capture_output=True, text=True, cwd=str(tmp_path), timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error:') and 'does not fit' in last, last
    assert 'is 64 in the checkpoint' in last or 'in the checkpoint' in last
