import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck
from mmdet.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from acnet_backbone import ACConv2d, ACResNet, fuse_model
from conftest import randomize_bn, rel_err

TINY = dict(base_channels=8, stem_channels=8)


def acb_count(model):
    return sum(isinstance(m, ACConv2d) for m in model.modules())


def test_registered_and_built_from_config():
    net = MODELS.build(dict(type='ACResNet', depth=18, **TINY))
    assert isinstance(net, ACResNet)
    assert acb_count(net) == 16  # 8 BasicBlocks x conv1, conv2


def test_bad_depth_and_mode():
    with pytest.raises(KeyError):
        ACResNet(20)
    with pytest.raises(ValueError, match='acb_mode'):
        ACResNet(18, acb_mode='nope')


@pytest.mark.parametrize('depth, count', [(18, 16), (34, 32), (50, 16),
                                          (101, 33), (152, 50)])
def test_acb_sites_per_depth(depth, count):
    net = ACResNet(depth, base_channels=4, stem_channels=4)
    assert acb_count(net) == count
    for m in net.modules():
        if isinstance(m, Bottleneck):
            assert isinstance(m.conv2, ACConv2d)
            assert type(m.conv1) is nn.Conv2d and type(m.conv3) is nn.Conv2d
    assert type(net.conv1) is nn.Conv2d  # stem untouched


def test_plain_keys_are_a_subset():
    plain = ResNet(50, **TINY).state_dict()
    ac = ACResNet(50, **TINY).state_dict()
    assert set(plain) < set(ac)
    assert all('.acb.' in k for k in set(ac) - set(plain))


@pytest.mark.parametrize('kwargs', [
    dict(depth=18),
    dict(depth=50),
    dict(depth=50, style='caffe'),
    dict(depth=50, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)),
    dict(depth=18, deep_stem=True, avg_down=True),
    dict(depth=50, out_indices=(1, 3), num_stages=4),
    dict(depth=34, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 2),
         out_indices=(0, 2)),
])
@pytest.mark.parametrize('mode', ['bn', 'online'])
def test_fused_equals_stock_resnet(kwargs, mode):
    args = dict(TINY, **kwargs)
    net = randomize_bn(ACResNet(acb_mode=mode, acb_gamma_init=0.8, **args))
    with torch.no_grad():  # online scales too, so nothing is trivially zero
        for m in net.modules():
            if hasattr(m, 'hor_scale'):
                m.hor_scale.uniform_(0.5, 1.5)
                m.ver_scale.uniform_(-1.5, -0.5)
    net = net.double().eval()
    x = torch.randn(2, 3, 67, 45, dtype=torch.float64)
    before = net(x)
    net.switch_to_deploy()
    assert acb_count(net) == 0 and net.deploy
    stock = ResNet(**args).double()
    stock.eval()  # mmdet's ResNet.train() returns None: no chaining
    stock.load_state_dict(net.state_dict(), strict=True)
    after = stock(x)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        assert rel_err(a, b) <= 1e-9
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.switch_to_deploy()  # idempotent
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_fused_float32_tolerance():
    net = randomize_bn(ACResNet(50, acb_gamma_init=1.0, **TINY)).eval()
    x = torch.randn(1, 3, 96, 128)
    before = net(x)
    fused = fuse_model(net)  # copies by default
    assert acb_count(net) > 0 and acb_count(fused) == 0
    for a, b in zip(fused(x), before):
        assert rel_err(a, b) <= 1e-4


def test_deploy_true_builds_stock_structure():
    net = ACResNet(50, deploy=True, **TINY)
    assert acb_count(net) == 0
    assert set(net.state_dict()) == set(ResNet(50, **TINY).state_dict())


def test_gamma_zero_is_plain_resnet_and_survives_init_weights():
    torch.manual_seed(1)
    net = ACResNet(18, acb_gamma_init=0.0, **TINY)
    net.init_weights()
    for m in net.modules():
        if isinstance(m, ACConv2d):
            assert torch.equal(m.acb.hor_bn.weight, torch.zeros(8 * m.out_channels // 8))
    stock = ResNet(18, **TINY)
    missing, unexpected = stock.load_state_dict(net.state_dict(), strict=False)
    assert not missing
    net.train()
    stock.train()
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(net(x), stock(x)):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize('mode', ['bn', 'online'])
def test_default_gamma_init_is_one_third(mode):
    """The default is the start that fine-tuned best from plain weights
    (docs/results/detection.md, "Which starting point"): branches at 1/3,
    not 0, so the branch kernels train from the first step."""
    # zero_init_residual would zero norm2 and with it every gradient here
    net = ACResNet(18, acb_mode=mode, zero_init_residual=False, **TINY)
    net.init_weights()
    assert net.acb_gamma_init == pytest.approx(1 / 3)
    values = [p.detach() for m in net.modules() if isinstance(m, ACConv2d)
              for p in m.acb.gamma_params().values()]
    assert values and all(torch.allclose(v, torch.full_like(v, 1 / 3))
                          for v in values)
    net.train()
    sum(o.square().mean() for o in net(torch.randn(2, 3, 32, 32))).backward()
    grad = net.layer2[0].conv1.acb.hor_conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_gamma_init_value_survives_default_init():
    net = ACResNet(18, acb_gamma_init=0.25, **TINY)
    net.init_weights()
    values = {float(v) for m in net.modules() if isinstance(m, ACConv2d)
              for p in m.acb.gamma_params().values() for v in p.detach()}
    assert values == {0.25}


def _branch_bns(module):
    return [m for n, m in module.named_modules()
            if isinstance(m, _BatchNorm) and '.acb.' in f'.{n}.']


def test_train_returns_self_frozen_stages_and_norm_eval():
    net = ACResNet(18, frozen_stages=1, norm_eval=True, **TINY)
    assert net.train() is net
    for p in net.layer1.parameters():
        assert not p.requires_grad
    branch = set(map(id, _branch_bns(net)))
    for m in net.modules():
        if isinstance(m, _BatchNorm) and id(m) not in branch:
            assert not m.training  # pretrained norms: frozen statistics
    # frozen stage: everything frozen, branches included
    assert not any(m.training for m in _branch_bns(net.layer1))
    # trainable stages: the new branch norms train under norm_eval
    for layer in (net.layer2, net.layer3, net.layer4):
        assert all(m.training for m in _branch_bns(layer))
    assert all(p.requires_grad for p in net.layer2.parameters())
    assert not any(m.training for m in _branch_bns(net.eval()))
    net = ACResNet(18, norm_eval=False, **TINY).train()
    assert net.layer1[0].conv1.acb.hor_bn.training


def test_acb_norm_eval_true_is_mmdet_blanket_behaviour():
    net = ACResNet(18, frozen_stages=1, norm_eval=True, acb_norm_eval=True,
                   **TINY).train()
    assert not any(m.training for m in net.modules()
                   if isinstance(m, _BatchNorm))


def _stats(bns):
    return [(m.running_mean.clone(), m.running_var.clone()) for m in bns]


def _changed(before, bns):
    return [not (torch.equal(a, m.running_mean) and torch.equal(
        b, m.running_var)) for (a, b), m in zip(before, bns)]


def test_shipped_coco_config_finetunes_branch_norms_and_fuses_exactly():
    """Built from the shipped COCO config (norm_eval=True, frozen_stages=1):
    in train mode the branch BNs of trainable stages learn statistics, the
    pretrained norms and the frozen stage do not; after optimiser steps the
    fused backbone loads strictly into stock ResNet and matches."""
    from mmengine.config import Config
    cfg = Config.fromfile('configs/acnet/retinanet_acresnet50_fpn_1x_coco.py')
    bcfg = cfg.model.backbone.copy()
    bcfg.pop('init_cfg')
    assert bcfg.norm_eval and bcfg.frozen_stages == 1
    net = MODELS.build(dict(bcfg, base_channels=8, stem_channels=8))
    net.train()
    branch = _branch_bns(net)
    frozen = _branch_bns(net.layer1)
    trainable = [m for m in branch if all(m is not f for f in frozen)]
    plain = [m for m in net.modules()
             if isinstance(m, _BatchNorm) and all(m is not b for b in branch)]
    assert len(trainable) == 2 * (4 + 6 + 3) and len(frozen) == 2 * 3
    b_tr, b_fr, b_pl = _stats(trainable), _stats(frozen), _stats(plain)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad],
                          lr=0.05)
    for _ in range(3):
        loss = sum(o.square().mean() for o in net(torch.randn(2, 3, 64, 64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(_changed(b_tr, trainable))
    assert not any(_changed(b_fr, frozen))
    assert not any(_changed(b_pl, plain))
    assert all(m.weight.grad is None for m in frozen)
    assert all(m.weight.grad is not None for m in trainable)
    net = net.double().eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    before = net(x)
    net.switch_to_deploy()
    stock_args = {k: v for k, v in bcfg.items()
                  if k not in ('type', 'acb_mode', 'acb_gamma_init')}
    stock = ResNet(**stock_args, base_channels=8, stem_channels=8).double()
    stock.load_state_dict(net.state_dict(), strict=True)
    stock.eval()
    for a, b in zip(stock(x), before):
        assert rel_err(a, b) <= 1e-9


def test_zero_init_residual_kept():
    net = ACResNet(50, zero_init_residual=True, acb_gamma_init=0.5, **TINY)
    net.init_weights()
    for m in net.modules():
        if isinstance(m, Bottleneck):
            assert torch.equal(m.norm3.weight, torch.zeros_like(m.norm3.weight))
            assert torch.all(m.conv2.acb.hor_bn.weight == 0.5)
    net = ACResNet(18, zero_init_residual=True, **TINY)
    net.init_weights()
    for m in net.modules():
        if isinstance(m, BasicBlock):
            assert torch.equal(m.norm2.weight, torch.zeros_like(m.norm2.weight))


def test_with_cp_backward_and_gradients_reach_branches():
    net = ACResNet(18, with_cp=True, acb_gamma_init=0.5, **TINY).train()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    sum(o.sum() for o in net(x)).backward()
    conv = net.layer2[0].conv1
    assert conv.acb.hor_conv.weight.grad is not None
    assert conv.acb.hor_conv.weight.grad.abs().sum() > 0


def test_out_shapes_tiny():
    net = ACResNet(50, **TINY).eval()
    outs = net(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [
        (1, 32, 16, 16), (1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]


def test_weight_transforming_conv_cfg_gets_no_acb():
    net = ACResNet(18, conv_cfg=dict(type='ConvWS'), **TINY)
    assert acb_count(net) == 0


def test_dcn_stages_get_no_acb():
    net = ACResNet(50, dcn=dict(type='DCN', deform_groups=1,
                                fallback_on_stride=False),
                   stage_with_dcn=(False, True, True, True), **TINY)
    assert acb_count(net) == 3  # only layer1's three Bottlenecks
    assert all(type(b.conv2).__name__ == 'DeformConv2dPack'
               for b in net.layer2)


def test_group_norm_refuses_to_fuse_and_changes_nothing():
    # GN everywhere: the branch norms themselves cannot be folded
    net = ACResNet(18, norm_cfg=dict(type='GN', num_groups=2), **TINY).eval()
    with pytest.raises(TypeError, match=r'layer1\.0\.conv1: cannot fuse '
                       'GroupNorm'):
        net.switch_to_deploy()
    # BN branches but a GN after the sum: it cannot absorb the branch bias
    net = ACResNet(18, **TINY).eval()
    block = net.layer2[1]
    setattr(block, block.norm2_name, torch.nn.GroupNorm(2, 16))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(TypeError, match=r'layer2\.1\.norm2 is a GroupNorm'):
        net.switch_to_deploy()
    assert acb_count(net) == 16 and not net.deploy
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_online_mode_with_group_norm_fuses():
    net = ACResNet(18, acb_mode='online', acb_gamma_init=0.5,
                   norm_cfg=dict(type='GN', num_groups=2), **TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    before = net(x)
    net.switch_to_deploy()
    for a, b in zip(net(x), before):
        assert rel_err(a, b) < 1e-5


def test_syncbn_config_fuses_in_eval():
    net = ACResNet(18, norm_cfg=dict(type='SyncBN'), **TINY)
    assert type(net.layer1[0].conv1.acb.hor_bn).__name__ == 'SyncBatchNorm'
    net = randomize_bn(net).eval()
    x = torch.randn(1, 3, 32, 32)
    before = net(x)
    net.switch_to_deploy()
    for a, b in zip(net(x), before):
        assert rel_err(a, b) < 1e-5


def test_revert_sync_batchnorm_then_fuse():
    from mmengine.model import revert_sync_batchnorm
    net = revert_sync_batchnorm(ACResNet(18, norm_cfg=dict(type='SyncBN'), **TINY))
    net = randomize_bn(net).eval()
    x = torch.randn(1, 3, 32, 32)
    before = net(x)
    net.switch_to_deploy()
    for a, b in zip(net(x), before):
        assert rel_err(a, b) < 1e-5


def test_fuse_model_on_a_detector():
    import os.path as osp

    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'acnet',
        'retinanet_acresnet50_fpn_1x_coco.py'))
    cfg.model.backbone = dict(type='ACResNet', depth=18, acb_gamma_init=0.5,
                              init_cfg=None, norm_eval=False)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.data_preprocessor = None
    det = MODELS.build(cfg.model)
    randomize_bn(det).eval()
    x = torch.randn(1, 3, 96, 96)
    before = det(x, mode='tensor')
    fused = fuse_model(det)
    assert acb_count(fused) == 0 and acb_count(det) == 16
    after = fused(x, mode='tensor')
    flat_b = [t for level in before for t in level]
    flat_a = [t for level in after for t in level]
    for a, b in zip(flat_a, flat_b):
        assert rel_err(a, b) < 1e-4


def test_stage_with_acb_leaves_stages_plain_and_fuses_to_stock():
    args = dict(TINY, depth=50, frozen_stages=1, norm_eval=True)
    net = ACResNet(stage_with_acb=(False, True, True, False),
                   acb_gamma_init=0.7, **args)
    assert acb_count(net) == 4 + 6  # layer2's and layer3's Bottlenecks
    for layer in (net.layer1, net.layer4):
        assert all(type(b.conv2) is nn.Conv2d for b in layer)
    # nothing of an ACB in the frozen stage 1, so nothing random there
    assert not any('.acb.' in k for k in net.state_dict()
                   if k.startswith('layer1.'))
    net = randomize_bn(net).double().eval()
    x = torch.randn(1, 3, 64, 48, dtype=torch.float64)
    before = net(x)
    net.switch_to_deploy()
    stock = ResNet(**args).double()
    stock.load_state_dict(net.state_dict(), strict=True)
    stock.eval()
    for a, b in zip(stock(x), before):
        assert rel_err(a, b) <= 1e-9
    with pytest.raises(ValueError, match='stage_with_acb has 3 entries; '
                       'num_stages is 4'):
        ACResNet(18, stage_with_acb=(True, True, False))
    assert acb_count(ACResNet(18, num_stages=3, strides=(1, 2, 2),
                              dilations=(1, 1, 1), out_indices=(0, 1, 2),
                              stage_with_acb=(True, False, False),
                              **TINY)) == 4


def test_acb_only_arguments_leave_the_stock_config():
    from acnet_backbone.deploy.common import stock_backbone
    cfg = dict(type='ACResNet', depth=18, acb_mode='online',
               acb_gamma_init=1 / 3, acb_norm_eval=True,
               stage_with_acb=(False, True, True, True), frozen_stages=1,
               init_cfg=dict(type='Pretrained', checkpoint='x.pth'), **TINY)
    stock = stock_backbone(cfg, 'ResNet', 'detection')
    assert stock == dict(type='ResNet', depth=18, frozen_stages=1,
                         init_cfg=None, **TINY)
    assert isinstance(MODELS.build(stock), ResNet)
