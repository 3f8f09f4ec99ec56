"""ACNet: ACBs in any mmdet backbone, fused back into the stock class."""
import copy
import os
import os.path as osp
import pickle

import pytest
import torch
from mmdet.models.backbones import CSPNeXt
from mmdet.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from acnet_backbone import ACConv2d, ACNet, ACResNet, add_acb, fuse_model
from acnet_backbone.backbones import PretrainedMismatchError
from acnet_backbone.convert import count_acb, find_acb_sites
from conftest import randomize_bn, rel_err

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

HRNET_EXTRA = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                num_blocks=(1, ), num_channels=(8, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                num_blocks=(1, 1), num_channels=(4, 8)),
    stage3=dict(num_modules=1, num_branches=3, block='BASIC',
                num_blocks=(1, 1, 1), num_channels=(4, 8, 16)),
    stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                num_blocks=(1, 1, 1, 1), num_channels=(4, 8, 16, 32)))

# tiny versions of mmdet's backbones: (config, number of ACB convs)
BACKBONES = {
    'ResNet': dict(type='ResNet', depth=18, base_channels=8, stem_channels=8),
    'ResNeXt': dict(type='ResNeXt', depth=50, groups=2, base_width=4,
                    base_channels=8, stem_channels=8),
    'RegNet': dict(type='RegNet', arch=dict(w0=8, wa=8.0, wm=2.0, group_w=8,
                                            depth=6, bot_mul=1.0),
                   stem_channels=8),
    'Res2Net': dict(type='Res2Net', depth=50, scales=4, base_width=4,
                    base_channels=16, stem_channels=16),
    'HRNet': dict(type='HRNet', extra=HRNET_EXTRA),
    'CSPDarknet': dict(type='CSPDarknet', deepen_factor=0.33,
                       widen_factor=0.125),
    'CSPNeXt': dict(type='CSPNeXt', deepen_factor=0.167, widen_factor=0.125),
    'MobileNetV2': dict(type='MobileNetV2', widen_factor=0.25,
                        out_indices=(2, 4, 7)),
}


def build(backbone, **kwargs):
    return MODELS.build(dict(type='ACNet', backbone=backbone, **kwargs))


def randomize(net, seed=0):
    """Random BN statistics/affine everywhere and random 'online' scales."""
    randomize_bn(net, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('_scale'):
                p.copy_(torch.rand(p.shape, generator=gen) * 2 - 1)
    return net


def outputs(net, x):
    out = net(x)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def frozen_bn(module):
    return isinstance(module, _BatchNorm) and not module.training


def branch_norms(module):
    return [m for n, m in module.named_modules()
            if isinstance(m, _BatchNorm) and '.acb.' in f'.{n}.']


# ----------------------------------------------------- every mmdet backbone
@pytest.mark.parametrize('mode', ['bn', 'online'])
@pytest.mark.parametrize('name', list(BACKBONES))
def test_backbone_trains_fuses_into_stock_class_exactly(name, mode):
    cfg = BACKBONES[name]
    net = build(cfg, acb_mode=mode, acb_gamma_init=0.7)
    stock_cls = MODELS.get(cfg['type'])
    assert isinstance(net, ACNet) and isinstance(net, stock_cls)
    assert type(net).stock_class is stock_cls
    n_acb = count_acb(net)
    plain_big = [n for n, m in MODELS.build(cfg).named_modules()
                 if type(m) is nn.Conv2d and max(m.kernel_size) > 1]
    assert n_acb == len(plain_big) > 0  # every kxk conv of these got one
    # a training step reaches the branches
    net.train()
    x = torch.randn(2, 3, 64, 64)
    sum(o.square().mean() for o in outputs(net, x)).backward()
    grads = [m.acb.hor_conv.weight.grad for _, m in net.acb_modules()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # fused in float64: the stock class, strict load, same function
    net = randomize(net).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    before = outputs(net, x)
    net.switch_to_deploy()
    assert count_acb(net) == 0 and net.deploy
    stock = MODELS.build(cfg).double()
    stock.load_state_dict(net.state_dict(), strict=True)
    stock.eval()
    after = outputs(stock, x)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        assert rel_err(a, b) <= 1e-9
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.switch_to_deploy()  # idempotent
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_float32_tolerance_and_fuse_model_copies():
    net = randomize(build(BACKBONES['CSPNeXt'], acb_gamma_init=1.0)).eval()
    x = torch.randn(1, 3, 96, 64)
    before = outputs(net, x)
    fused = fuse_model(net)
    assert count_acb(net) > 0 and count_acb(fused) == 0
    for a, b in zip(outputs(fused, x), before):
        assert rel_err(a, b) <= 1e-4


def test_depthwise_5x5_and_strided_convs_get_acbs():
    net = build(BACKBONES['CSPNeXt'])
    convs = dict(net.acb_modules())
    depthwise = [c for c in convs.values()
                 if c.groups == c.in_channels > 1 and c.kernel_size == (5, 5)]
    strided = [c for c in convs.values() if c.stride == (2, 2)]
    assert depthwise and strided
    assert depthwise[0].acb.hor_conv.kernel_size == (1, 5)
    assert depthwise[0].acb.hor_conv.groups == depthwise[0].groups


def test_resnet_wrapper_equals_acresnet():
    args = dict(depth=50, base_channels=8, stem_channels=8)
    ac = randomize(ACResNet(acb_gamma_init=0.6, **args)).double().eval()
    net = build(dict(type='ResNet', **args), exclude=[r'^conv1$'])
    assert set(net.state_dict()) == set(ac.state_dict())
    net.load_state_dict(ac.state_dict(), strict=True)
    net = net.double().eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    for a, b in zip(net(x), ac(x)):
        assert rel_err(a, b) <= 1e-12


# -------------------------------------------------- step 0 and checkpoints
@pytest.mark.parametrize('mode', ['bn', 'online'])
def test_gamma_zero_is_the_plain_backbone_after_init_weights(mode):
    cfg = BACKBONES['CSPNeXt']
    net = build(cfg, acb_mode=mode, acb_gamma_init=0.0)
    net.init_weights()
    for _, conv in net.acb_modules():
        assert all(torch.all(p == 0)
                   for p in conv.acb.gamma_params().values())
    stock = MODELS.build(cfg)
    missing, unexpected = stock.load_state_dict(net.state_dict(),
                                                strict=False)
    assert not missing and all('.acb.' in k for k in unexpected)
    net.train()
    stock.train()
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(net(x), stock(x)):
        assert torch.allclose(a, b, atol=1e-6)


def test_gamma_init_survives_default_init():
    net = build(BACKBONES['ResNet'], acb_gamma_init=0.25)
    net.init_weights()  # ResNet's init_cfg sets every BN weight to 1
    values = {float(v) for _, m in net.acb_modules()
              for p in m.acb.gamma_params().values() for v in p.detach()}
    assert values == {0.25}


def test_default_gamma_init_is_one_third():
    """ACNet and add_acb start their branches at 1/3 by default, as
    ACResNet does."""
    net = build(BACKBONES['ResNet'])
    net.init_weights()
    plain = add_acb(MODELS.build(BACKBONES['MobileNetV2']))
    for model in (net, plain):
        assert model.acb_gamma_init == pytest.approx(1 / 3)
        values = [p.detach() for _, m in model.acb_modules()
                  for p in m.acb.gamma_params().values()]
        assert values and all(torch.allclose(v, torch.full_like(v, 1 / 3))
                              for v in values)


def test_plain_checkpoint_loads_through_pretrained(tmp_path):
    cfg = BACKBONES['CSPNeXt']
    plain = randomize_bn(MODELS.build(cfg))
    path = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in
                                plain.state_dict().items()}), path)
    net = build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path,
                                        prefix='backbone.')),
                acb_gamma_init=0.5)
    net.init_weights()
    own = net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in plain.state_dict().items())
    assert all(torch.all(p == 0.5) for _, m in net.acb_modules()
               for p in m.acb.gamma_params().values())
    # ACNet(init_cfg=None) overrides the backbone's (generic tools set it)
    net = build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path)),
                init_cfg=None)
    assert net.init_cfg is None


def test_acb_checkpoint_keeps_its_gammas(tmp_path):
    cfg = BACKBONES['ResNet']
    trained = randomize(build(cfg, acb_gamma_init=0.3))
    path = str(tmp_path / 'acb.pth')
    torch.save(trained.state_dict(), path)
    net = build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path)))
    net.init_weights()
    for k, v in trained.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k


def test_checkpoint_with_only_some_branch_tensors_is_refused(tmp_path):
    cfg = BACKBONES['ResNet']
    state = build(cfg).state_dict()
    dropped = next(k for k in state if k.endswith('acb.hor_bn.weight'))
    del state[dropped]
    path = str(tmp_path / 'partial.pth')
    torch.save(state, path)
    net = build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path)))
    with pytest.raises(PretrainedMismatchError, match=dropped):
        net.init_weights()


@pytest.mark.parametrize('other', [
    dict(type='ResNet', depth=18, base_channels=16, stem_channels=16),
    dict(type='CSPNeXt', deepen_factor=0.167, widen_factor=0.125),
])
def test_checkpoint_of_another_architecture_is_refused(tmp_path, other):
    path = str(tmp_path / 'other.pth')
    torch.save(MODELS.build(other).state_dict(), path)
    cfg = BACKBONES['ResNet']
    net = build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=path)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(PretrainedMismatchError) as info:
        net.init_weights()
    assert '\n' not in str(info.value) and 'nothing loaded' in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_deepcopy_and_pickle_keep_the_class_and_function():
    net = randomize(build(BACKBONES['CSPNeXt'], acb_gamma_init=0.5)).eval()
    x = torch.randn(1, 3, 64, 64)
    ref = outputs(net, x)
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert type(clone) is type(net) and clone.acb_sites == net.acb_sites
        for a, b in zip(outputs(clone, x), ref):
            assert torch.equal(a, b)


def test_add_acb_copies_by_default():
    plain = MODELS.build(BACKBONES['MobileNetV2'])
    net = add_acb(plain)
    assert count_acb(plain) == 0 and type(plain).__name__ == 'MobileNetV2'
    assert type(net).__name__ == 'ACNetMobileNetV2' and count_acb(net) > 0
    assert add_acb(plain, inplace=True) is plain and count_acb(plain) > 0


def test_deploy_true_builds_the_stock_structure():
    cfg = BACKBONES['HRNet']
    net = build(cfg, deploy=True)
    assert count_acb(net) == 0
    assert set(net.state_dict()) == set(MODELS.build(cfg).state_dict())
    net.switch_to_deploy()  # nothing to do


# ------------------------------------------- frozen stages and norm_eval
@pytest.mark.parametrize('name', ['ResNet', 'CSPNeXt', 'MobileNetV2'])
def test_frozen_stages_and_norm_eval(name):
    net = build(dict(BACKBONES[name], frozen_stages=1, norm_eval=True))
    assert net.train() is net
    frozen, trainable = [], []
    for _, conv in net.acb_modules():
        (trainable if conv.weight.requires_grad else frozen).append(conv)
    assert frozen and trainable
    for conv in frozen:  # frozen part: branches frozen with it
        assert not any(p.requires_grad for p in conv.acb.parameters())
        assert not any(m.training for m in conv.acb.modules())
    for conv in trainable:  # new branch norms train under norm_eval
        assert all(p.requires_grad for p in conv.acb.parameters())
        assert all(m.training for m in branch_norms(conv))
    branch = {id(m) for m in branch_norms(net)}
    assert all(frozen_bn(m) for m in net.modules()
               if isinstance(m, _BatchNorm) and id(m) not in branch)
    assert not any(m.training for m in branch_norms(net.eval()))
    blanket = build(dict(BACKBONES[name], frozen_stages=1, norm_eval=True),
                    acb_norm_eval=True).train()
    assert all(frozen_bn(m) for m in blanket.modules()
               if isinstance(m, _BatchNorm))


def test_frozen_stage_branches_do_not_change_in_a_step():
    net = build(dict(BACKBONES['CSPNeXt'], frozen_stages=1),
                acb_gamma_init=0.5).train()
    frozen = [m for _, m in net.acb_modules() if not m.weight.requires_grad]
    stats = [(b.running_mean.clone(), b.weight.clone())
             for m in frozen for b in branch_norms(m)]
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad],
                          lr=0.1)
    sum(o.square().mean() for o in net(torch.randn(2, 3, 64, 64))).backward()
    opt.step()
    after = [(b.running_mean, b.weight) for m in frozen
             for b in branch_norms(m)]
    assert stats and all(torch.equal(a, c) and torch.equal(b, d)
                         for (a, b), (c, d) in zip(stats, after))


@pytest.mark.parametrize('wrapped', [True, False])
def test_branch_norms_train_under_a_frozen_norm_cfg(wrapped):
    """Part 5: norm_cfg requires_grad=False (caffe-style configs) freezes the
    pretrained norms, not the new branch norms: with gamma 0 they would
    otherwise output zero for the whole of training."""
    # zero_init_residual would freeze norm2 at 0 here: no gradient at all
    args = dict(norm_cfg=dict(type='BN', requires_grad=False),
                zero_init_residual=False)
    if wrapped:
        net = build(dict(BACKBONES['ResNet'], **args))
    else:
        net = ACResNet(18, base_channels=8, stem_channels=8, **args)
    net.init_weights()
    net.train()
    branch = {id(m) for m in branch_norms(net)}
    for m in net.modules():
        if isinstance(m, _BatchNorm):
            assert m.weight.requires_grad == (id(m) in branch)
    sum(o.square().mean() for o in net(torch.randn(2, 3, 32, 32))).backward()
    grads = [m.weight.grad for m in branch_norms(net)]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


# --------------------------------------------------------------- which convs
def test_kept_convs_dcn_and_conv_ws():
    cfg = dict(BACKBONES['ResNeXt'],
               dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False),
               stage_with_dcn=(False, True, True, True))
    net = build(cfg)
    assert all(type(b.conv2).__name__ == 'DeformConv2dPack'
               for b in net.layer2)
    assert all(isinstance(b.conv2, ACConv2d) for b in net.layer1)
    with pytest.raises(ValueError, match='has no conv that can get an ACB'):
        build(dict(BACKBONES['ResNet'], conv_cfg=dict(type='ConvWS')))


def test_exclude_patterns():
    net = build(BACKBONES['CSPNeXt'], exclude=['^stem', r'\.depthwise_conv'])
    names = [n for n, _ in net.acb_modules()]
    assert names and not any(n.startswith('stem') or 'depthwise_conv' in n
                             for n in names)
    sites, kept = find_acb_sites(MODELS.build(BACKBONES['CSPNeXt']),
                                 exclude=['^stem'])
    assert any(r.startswith("excluded by '^stem'") for r in kept.values())


def test_group_norm_needs_online_mode():
    cfg = dict(BACKBONES['ResNet'], norm_cfg=dict(type='GN', num_groups=2))
    with pytest.raises(ValueError, match="acb_mode='online' can"):
        build(cfg)
    net = randomize(build(cfg, acb_mode='online')).double().eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    before = net(x)
    net.switch_to_deploy()
    stock = MODELS.build(cfg).double()
    stock.load_state_dict(net.state_dict(), strict=True)
    stock.eval()
    for a, b in zip(stock(x), before):
        assert rel_err(a, b) <= 1e-9


def test_conv_with_bias_and_no_norm_folds_into_its_bias():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, stride=2, bias=False),
                          nn.BatchNorm2d(4))
    net = randomize(add_acb(model, acb_gamma_init=0.5)).double().eval()
    assert [s.norm for s in net.acb_sites] == [None, '3']
    x = torch.randn(1, 3, 9, 9, dtype=torch.float64)
    before = net(x)
    net.switch_to_deploy()
    stock = copy.deepcopy(model).double().eval()
    stock.load_state_dict(net.state_dict(), strict=True)
    assert rel_err(stock(x), before) <= 1e-9


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize('kwargs, match', [
    (dict(backbone=dict(type='ResNet', depth=18), acb_mode='nope'),
     'acb_mode'),
    (dict(backbone=None), 'backbone=dict'),
    (dict(backbone=dict(type='ACNet', backbone=dict(type='ResNet',
                                                    depth=18))),
     'cannot wrap an ACNet'),
    (dict(backbone=dict(type='ACResNet', depth=18)), 'already holds ACBs'),
    (dict(backbone=dict(type='ResNet', depth=18), exclude=['nothing_here']),
     "'nothing_here' matches no conv"),
    (dict(backbone=dict(type='ResNet', depth=18), exclude=['(']),
     'bad exclude pattern'),
])
def test_bad_input_is_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        MODELS.build(dict(type='ACNet', **kwargs))
    assert '\n' not in str(info.value)


def test_failed_conversion_changes_nothing():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                          nn.Conv2d(4, 4, 1))
    for kwargs in (dict(exclude=['^9']), dict(acb_mode='nope')):
        with pytest.raises(ValueError):
            add_acb(model, inplace=True, **kwargs)
        assert type(model) is nn.Sequential and count_acb(model) == 0
    with pytest.raises(ValueError, match='no conv with a kernel larger'):
        add_acb(nn.Sequential(nn.Conv2d(3, 4, 1)))


# --------------------------------------------------- detectors and the tool
def _shapes_config(tmp_path, name):
    """configs/rtmdet_shapes/NAME on a tiny shapes dataset under tmp_path,
    as a config file (the tools take paths)."""
    from acnet_backbone.datasets import make_shapes_dataset
    data = str(tmp_path / 'data') + '/'
    make_shapes_dataset(data, 4, 3, 96, seed=1, progress=False)
    config = tmp_path / name
    config.write_text(
        f"_base_ = '{ROOT}/configs/rtmdet_shapes/{name}'\n"
        f"data_root = '{data}'\n"
        "train_dataloader = dict(batch_size=2, num_workers=0, "
        "persistent_workers=False, dataset=dict(data_root=data_root))\n"
        "val_dataloader = dict(num_workers=0, persistent_workers=False, "
        "dataset=dict(data_root=data_root))\n"
        "test_dataloader = val_dataloader\n"
        "val_evaluator = dict(ann_file=data_root + 'annotations/val.json')\n"
        "test_evaluator = val_evaluator\n")
    return str(config)


def test_rtmdet_acb_deploys_end_to_end_as_stock_rtmdet(tmp_path):
    """tools/fuse.py and tools/deploy.py (their package functions) take an
    ACNet detector: the fused config names CSPNeXt, the fused checkpoint
    loads strictly into it, and the mmdeploy ONNX reproduces torch."""
    from mmengine.config import Config

    from acnet_backbone.deploy.checkpoint import build_detector, stock_config
    from acnet_backbone.deploy.end2end import deploy_checkpoint
    config = _shapes_config(tmp_path, 'rtmdet_tiny-acb_shapes.py')
    cfg = Config.fromfile(config)
    fused_cfg = stock_config(cfg)
    assert fused_cfg.model.backbone.type == 'CSPNeXt'
    assert fused_cfg.model.backbone.init_cfg is None
    assert 'custom_imports' not in fused_cfg
    det = build_detector(cfg)
    assert isinstance(det.backbone, ACNet) and count_acb(det.backbone) > 0
    randomize(det)
    # every box reaches 3 strides left, up and down from its point and ends
    # 1 stride left of it: the boxes near the edges reach past the image
    # border, where mmdet clips them, and those of the first column lie
    # wholly left of it, clipped flat, which mmdet drops (mmdeploy's own
    # RTMDet rewrite does neither: acnet_backbone.deploy.mmdeploy_compat)
    with torch.no_grad():
        for reg in det.bbox_head.rtm_reg:
            reg.weight.zero_()
            reg.bias.copy_(torch.tensor([3.0, 3.0, -1.0, 3.0]))
    ckpt = str(tmp_path / 'acb.pth')
    torch.save(dict(state_dict=det.state_dict()), ckpt)
    out = tmp_path / 'deployed'
    report = deploy_checkpoint(config, ckpt, str(out), num_images=3)
    assert report['check']['detections'] > 0
    assert report['check']['mismatched_images'] == 0
    assert report['check']['max_box_err_px'] <= 1e-2
    assert report['check']['degenerate_onnx_boxes'] == 0
    assert report['onnx']['custom_ops'] == []
    from acnet_backbone.deploy.end2end import (dataset_images, ort_session,
                                               preprocess)
    written = Config.fromfile(str(out / 'fused_config.py'))
    stock = build_detector(written).eval()
    inputs, _ = preprocess(written, stock, dataset_images(written, 1)[0])
    dets, _ = ort_session(str(out / 'end2end.onnx')).run(
        ['dets', 'labels'], {'input': inputs.numpy()})
    boxes, (h, w) = dets[0][:, :4], inputs.shape[-2:]
    assert len(boxes) and (boxes >= 0).all()
    assert (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
    assert (boxes[:, :2] == 0).any()
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    written = Config.fromfile(str(out / 'fused_config.py'))
    assert written.model.backbone.type == 'CSPNeXt'
    stock = build_detector(written)
    state = torch.load(str(out / 'fused.pth'), weights_only=True)
    stock.load_state_dict(state['state_dict'], strict=True)
    assert not any(type(m).__module__.startswith('acnet_backbone')
                   for m in stock.modules())
    stock.eval()
    det.eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        for a, b in zip(stock.backbone(x), det.backbone(x)):
            assert rel_err(a, b) <= 1e-4


def test_plain_detector_checkpoint_loads_as_load_from(tmp_path):
    """The Runner's ``load_from`` path (mmengine's load_checkpoint, not
    strict): a plain RTMDet checkpoint fills the ACB RTMDet's stock tensors
    and the branches keep their init."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from acnet_backbone.deploy.checkpoint import build_detector
    cfgs = [Config.fromfile(osp.join(ROOT, 'configs', 'rtmdet_shapes', n))
            for n in ('rtmdet_tiny_shapes.py', 'rtmdet_tiny-acb_shapes.py')]
    plain = randomize_bn(build_detector(cfgs[0]))
    path = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=plain.state_dict()), path)
    det = build_detector(cfgs[1])
    det.init_weights()
    gammas = {k: v.clone() for k, v in det.state_dict().items()
              if '.acb.' in k}
    load_checkpoint(det, path, map_location='cpu')
    own = det.state_dict()
    assert all(torch.equal(own[k], v) for k, v in plain.state_dict().items())
    assert gammas and all(torch.equal(own[k], v) for k, v in gammas.items())
    assert all(torch.all(p == 1.0) for _, m in det.backbone.acb_modules()
               for p in m.acb.gamma_params().values())


@pytest.mark.parametrize('name', ['rtmdet_tiny_shapes.py',
                                  'rtmdet_tiny-acb_shapes.py'])
def test_rtmdet_shapes_configs_train_a_step(tmp_path, name):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(_shapes_config(tmp_path, name))
    assert cfg.model.backbone.type == ('ACNet' if 'acb' in name else
                                       'CSPNeXt')
    cfg.train_cfg.update(max_iters=1, val_interval=10)
    cfg.default_hooks.checkpoint.interval = 10
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    backbone = runner.model.backbone
    assert isinstance(backbone, CSPNeXt)
    assert (count_acb(backbone) > 0) == ('acb' in name)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    runner.train()
    assert runner.iter == 1
    changed = [k for k, v in backbone.state_dict().items()
               if not torch.equal(before[k], v)]
    assert changed
    if 'acb' in name:
        assert any('.acb.' in k for k in changed)


COCO_CONFIGS = sorted(n for n in os.listdir(
    osp.join(ROOT, 'configs', 'acnet')) if '_acnet-' in n)


@pytest.mark.parametrize('name', COCO_CONFIGS)
def test_shipped_coco_configs_wrap_the_stock_backbone(name):
    """configs/acnet/*_acnet-*: the stock mmdet config's backbone inside
    ACNet; it builds, and its stock tensors (what the config's ImageNet
    checkpoint holds) are exactly the stock backbone's."""
    import mmdet
    from mmengine.config import Config

    from acnet_backbone.deploy.checkpoint import stock_config
    path = osp.join(ROOT, 'configs', 'acnet', name)
    cfg = Config.fromfile(path)
    base = open(path).read().split("_base_ = 'mmdet::")[1].split("'")[0]
    stock_cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim',
                                         'configs', base))
    assert cfg.model.backbone.type == 'ACNet'
    assert cfg.model.backbone.backbone == stock_cfg.model.backbone
    fused = stock_config(cfg).model.backbone
    assert fused == dict(stock_cfg.model.backbone, init_cfg=None)
    net = MODELS.build(dict(cfg.model.backbone, init_cfg=None))
    assert isinstance(net, MODELS.get(fused.type)) and count_acb(net) > 0
    stock_keys = set(MODELS.build(fused).state_dict())
    keys = set(net.state_dict())
    assert stock_keys < keys and all('.acb.' in k for k in keys - stock_keys)


# ---------------------------- mmdet's own CSPDarknet test, on the wrapper
def test_mmdet_csp_darknet_unit_test_passes_with_the_wrapper():
    """mmdet 3.3's tests/test_models/test_backbones/test_csp_darknet.py
    (Apache-2.0), with ``CSPDarknet(...)`` replaced by the wrapper around it
    and the inputs shrunk from 224/320 to 64 pixels (shapes scaled); its
    ``norm_eval`` check expects every BN frozen: that is
    ``acb_norm_eval=True``."""
    from mmdet.models.backbones.csp_darknet import CSPDarknet as Stock

    def CSPDarknet(**kwargs):  # noqa: N802
        net = build(dict(type='CSPDarknet', **kwargs), acb_norm_eval=True)
        assert isinstance(net, Stock) and count_acb(net) > 0
        return net

    def check_norm_state(modules, train_state):
        return all(m.training == train_state for m in modules
                   if isinstance(m, _BatchNorm))

    with pytest.raises(ValueError):
        CSPDarknet(frozen_stages=6)
    with pytest.raises(AssertionError):
        CSPDarknet(out_indices=[6])

    frozen_stages = 1
    model = CSPDarknet(frozen_stages=frozen_stages)
    model.train()
    for mod in model.stem.modules():
        for param in mod.parameters():
            assert param.requires_grad is False
    for i in range(1, frozen_stages + 1):
        layer = getattr(model, f'stage{i}')
        for mod in layer.modules():
            if isinstance(mod, _BatchNorm):
                assert mod.training is False
        for param in layer.parameters():
            assert param.requires_grad is False

    model = CSPDarknet(norm_eval=True)
    model.train()
    assert check_norm_state(model.modules(), False)

    model = CSPDarknet(arch='P5', widen_factor=0.25, out_indices=range(0, 5))
    model.train()
    assert check_norm_state(model.modules(), True)
    feat = model(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feat] == [
        (1, 16, 32, 32), (1, 32, 16, 16), (1, 64, 8, 8), (1, 128, 4, 4),
        (1, 256, 2, 2)]

    model = CSPDarknet(arch='P6', widen_factor=0.25, out_indices=range(0, 6),
                       spp_kernal_sizes=(3, 5, 7))
    model.train()
    feat = model(torch.randn(2, 3, 64, 64))  # 1x1 at the end: 2 images
    assert [tuple(f.shape) for f in feat] == [
        (2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4),
        (2, 192, 2, 2), (2, 256, 1, 1)]

    model = CSPDarknet(widen_factor=0.25, act_cfg=dict(type='ReLU'),
                       out_indices=range(0, 5))
    model.train()
    feat = model(torch.randn(1, 3, 64, 64))
    assert len(feat) == 5 and feat[4].shape == torch.Size((1, 256, 2, 2))

    arch_ovewrite = [[32, 56, 3, True, False], [56, 224, 2, True, False],
                     [224, 512, 1, True, False]]
    model = CSPDarknet(arch_ovewrite=arch_ovewrite, widen_factor=0.25,
                       out_indices=(0, 1, 2, 3))
    model.train()
    feat = model(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feat] == [
        (1, 8, 32, 32), (1, 14, 16, 16), (1, 56, 8, 8), (1, 128, 4, 4)]
