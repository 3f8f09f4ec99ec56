import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from acnet_backbone import ACBlock, ACConv2d
from acnet_backbone.fusion import (add_to_center, bn_scale_shift,
                                   fold_bias_into_bn, fuse_conv_bn)
from conftest import randomize_bn, rel_err


def test_fuse_conv_bn_matches_modules():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True).double()
    bn = randomize_bn(nn.BatchNorm2d(6, eps=1e-3)).double().eval()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    k, b = fuse_conv_bn(conv.weight, bn, conv.bias)
    assert rel_err(nn.functional.conv2d(x, k, b, padding=1), bn(conv(x))) < 1e-12


def test_bn_scale_shift_without_affine_and_refusals():
    bn = randomize_bn(nn.BatchNorm2d(3, affine=False)).eval()
    x = torch.randn(1, 3, 4, 4)
    s, t = bn_scale_shift(bn)
    assert torch.allclose(x * s[:, None, None] + t[:, None, None], bn(x), atol=1e-6)
    with pytest.raises(TypeError, match='GroupNorm'):
        bn_scale_shift(nn.GroupNorm(1, 3))
    with pytest.raises(ValueError, match='running'):
        bn_scale_shift(nn.BatchNorm2d(3, track_running_stats=False))


def test_add_to_center_positions():
    square = torch.zeros(1, 1, 5, 5)
    out = add_to_center(square, torch.ones(1, 1, 1, 5))
    out = add_to_center(out, torch.ones(1, 1, 5, 1) * 2)
    expected = torch.zeros(5, 5)
    expected[2, :] += 1
    expected[:, 2] += 2
    assert torch.equal(out[0, 0], expected)
    with pytest.raises(ValueError):
        add_to_center(square, torch.ones(1, 1, 1, 3))


def test_fold_bias_into_bn():
    bn = randomize_bn(nn.BatchNorm2d(3)).double().eval()
    bias = torch.randn(3, dtype=torch.float64)
    y = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    expected = bn(y + bias[:, None, None])
    fold_bias_into_bn(bias, bn)
    assert rel_err(bn(y), expected) < 1e-12
    with pytest.raises(TypeError, match='GroupNorm'):
        fold_bias_into_bn(bias, nn.GroupNorm(1, 3))


def check_block(block, x, tol64=1e-9):
    """Randomise BNs, compare the block with its fused conv in float64."""
    randomize_bn(block)
    block = block.double().eval()
    x = x.double()
    before = block(x)
    kernel, bias = block.get_equivalent_kernel_bias()
    block.switch_to_deploy()
    assert block.deploy and not hasattr(block, 'acb')
    assert type(block.fused_conv) is nn.Conv2d
    after = block(x)
    assert after.shape == before.shape
    assert rel_err(after, before) <= tol64
    assert torch.equal(block.fused_conv.weight, kernel.detach())
    block.switch_to_deploy()  # idempotent
    assert torch.equal(block(x), after)


@pytest.mark.parametrize('k', [1, 3, 5])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('dilation', [1, 2, 4])
@pytest.mark.parametrize('pad_offset', [-1, 0, 1])  # crop / same / larger
def test_acblock_fusion_geometry(k, stride, dilation, pad_offset):
    padding = max(0, dilation * (k // 2) + pad_offset)
    block = ACBlock(4, 6, k, stride=stride, padding=padding, dilation=dilation)
    check_block(block, torch.randn(2, 4, 19, 23))


@pytest.mark.parametrize('groups', [2, 4])
@pytest.mark.parametrize('eps', [1e-5, 1e-3, 0.1])
@pytest.mark.parametrize('mode', ['bn', 'online'])
def test_acblock_groups_eps_modes(groups, eps, mode):
    block = ACBlock(8, 12, 3, padding=1, groups=groups, acb_mode=mode,
                    norm_cfg=dict(type='BN', eps=eps), acb_gamma_init=0.7)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.eps == eps
    check_block(block, torch.randn(2, 8, 11, 11))


def test_acblock_asymmetric_padding_and_float32():
    block = ACBlock(3, 5, 3, stride=(1, 2), padding=(0, 2), dilation=(1, 2))
    randomize_bn(block).eval()
    x = torch.randn(2, 3, 15, 16)
    before = block(x)
    block.switch_to_deploy()
    assert rel_err(block(x), before) < 1e-5


def test_acblock_syncbn_modules_fuse():
    """SyncBN (as configured for multi-GPU training) fuses like BN: modules are
    checked with isinstance(_BatchNorm), not by config strings."""
    block = ACBlock(4, 4, 3, padding=1, norm_cfg=dict(type='SyncBN'))
    assert type(block.square_bn).__name__ == 'SyncBatchNorm'
    assert type(block.acb.hor_bn).__name__ == 'SyncBatchNorm'
    randomize_bn(block)
    block = block.double().eval()
    x = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    # SyncBN needs a process group in training only; eval uses running stats
    before = block(x)
    block.switch_to_deploy()
    assert rel_err(block(x), before) < 1e-9


def test_acblock_matches_explicit_branch_sum():
    """The block is what ACNet defines: three conv+BN branches summed, the
    1xk and kx1 ones seeing the centre row/column of the kxk window."""
    block = randomize_bn(ACBlock(2, 3, 3, padding=2, dilation=2)).double().eval()
    x = torch.randn(1, 2, 10, 10, dtype=torch.float64)
    sq = block.square_bn(nn.functional.conv2d(
        x, block.square_conv.weight, padding=2, dilation=2))
    hor = block.acb.hor_bn(nn.functional.conv2d(
        x, block.acb.hor_conv.weight, padding=(0, 2), dilation=2))
    ver = block.acb.ver_bn(nn.functional.conv2d(
        x, block.acb.ver_conv.weight, padding=(2, 0), dilation=2))
    assert rel_err(block(x), sq + hor + ver) < 1e-12


@pytest.mark.parametrize('kwargs, match', [
    (dict(kernel_size=2), 'odd'),
    (dict(kernel_size=(3, 5)), 'square'),
    (dict(kernel_size=3, padding_mode='reflect'), 'zero padding'),
    (dict(kernel_size=3, padding=-1), 'padding'),
    (dict(kernel_size=3, acb_mode='fast'), 'acb_mode'),
    (dict(kernel_size=3, padding='same'), 'padding'),
])
def test_acblock_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ACBlock(2, 2, **kwargs)


def test_acconv2d_online_gradients_reach_everything():
    x = torch.randn(2, 4, 8, 8)
    conv = ACConv2d(4, 4, 3, padding=1, acb_mode='online', gamma_init=0.5)
    conv(x).square().sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # at scale 0 the branch kernels get no gradient yet, but the scales do,
    # so the branches wake up after the first step
    conv = ACConv2d(4, 4, 3, padding=1, acb_mode='online', gamma_init=0.0)
    conv(x).square().sum().backward()
    assert conv.acb.hor_scale.grad.abs().sum() > 0
    assert conv.acb.ver_scale.grad.abs().sum() > 0


def test_acconv2d_gamma_zero_is_the_plain_conv():
    for mode in ('bn', 'online'):
        conv = ACConv2d(3, 5, 3, padding=1, acb_mode=mode, gamma_init=0.0)
        x = torch.randn(2, 3, 8, 8)
        assert torch.equal(conv.train()(x), nn.functional.conv2d(
            x, conv.weight, padding=1))


@settings(max_examples=40, deadline=None)
@given(k=st.sampled_from([1, 3, 5, 7]), stride=st.integers(1, 3),
       dilation=st.integers(1, 3), pad_delta=st.integers(-3, 2),
       groups=st.sampled_from([1, 2]), mode=st.sampled_from(['bn', 'online']),
       h=st.integers(0, 12), w=st.integers(0, 12), seed=st.integers(0, 99))
def test_acblock_property(k, stride, dilation, pad_delta, groups, mode, h, w,
                          seed):
    padding = max(0, dilation * (k // 2) + pad_delta)
    # the smallest input the square conv accepts, plus a random margin
    min_size = max(1, dilation * (k - 1) + 1 - 2 * padding)
    torch.manual_seed(seed)
    block = ACBlock(2 * groups, 2 * groups, k, stride, padding, dilation,
                    groups, acb_mode=mode, acb_gamma_init=0.5)
    check_block(block, torch.randn(1, 2 * groups, min_size + h, min_size + w))
