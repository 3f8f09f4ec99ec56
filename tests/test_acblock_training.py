"""ACBlock in training mode: the output is the sum of the three branches,
each normalised with its own batch statistics ('bn'), or the merged kernel
through the square BN ('online'); every branch gets its gradient and its BN
its running statistics. (The fusion tests run in eval mode only.)"""
import pytest
import torch
import torch.nn.functional as F

from acnet_backbone import ACBlock
from acnet_backbone.testing import randomize_bn

# (kernel, stride, padding, dilation, groups): the ordinary 3x3, a 3x3 whose
# branches crop their input (padding 0), a dilated grouped 5x5
GEOMETRIES = [(3, 1, 1, 1, 1), (3, 2, 0, 1, 1), (5, 1, 4, 2, 2)]


def _embed(kernel, k, branch):
    """A 1 x k ('hor') or k x 1 ('ver') kernel as the k x k kernel with it
    in the centre row / column (zeros elsewhere)."""
    out = kernel.new_zeros(kernel.shape[0], kernel.shape[1], k, k)
    if branch == 'hor':
        out[:, :, k // 2, :] = kernel[:, :, 0, :]
    else:
        out[:, :, :, k // 2] = kernel[:, :, :, 0]
    return out


def _batch_norm(z, bn):
    """Training-mode BN written out: the batch's mean and biased variance."""
    mean = z.mean((0, 2, 3), keepdim=True)
    var = z.var((0, 2, 3), unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(
        1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)


def _expected(block, x):
    """The block's training-mode function from its parameters, by hand."""
    sq = block.square_conv
    k = sq.kernel_size[0]
    geometry = dict(stride=sq.stride, padding=sq.padding,
                    dilation=sq.dilation, groups=sq.groups)
    acb = block.acb
    if block.acb_mode == 'online':
        kernel = sq.weight + sum(
            getattr(acb, f'{b}_scale').view(-1, 1, 1, 1) *
            _embed(getattr(acb, f'{b}_conv').weight, k, b)
            for b in ('hor', 'ver'))
        return _batch_norm(F.conv2d(x, kernel, **geometry), block.square_bn)
    out = _batch_norm(F.conv2d(x, sq.weight, **geometry), block.square_bn)
    for b in ('hor', 'ver'):
        z = F.conv2d(x, _embed(getattr(acb, f'{b}_conv').weight, k, b),
                     **geometry)
        out = out + _batch_norm(z, getattr(acb, f'{b}_bn'))
    return out


def _block(mode, geometry):
    k, stride, padding, dilation, groups = geometry
    torch.manual_seed(1)
    block = ACBlock(2 * groups, 3 * groups, k, stride, padding, dilation,
                    groups, acb_mode=mode)
    randomize_bn(block)
    with torch.no_grad():
        if mode == 'online':  # scales other than the initial 1
            block.acb.hor_scale.uniform_(0.5, 1.5)
            block.acb.ver_scale.uniform_(-1.5, -0.5)
    return block.double().train()


def _conv_inputs(block, x):
    """Each branch's conv input and output channels' batch statistics."""
    sq, acb = block.square_conv, block.acb
    k = sq.kernel_size[0]
    geometry = dict(stride=sq.stride, padding=sq.padding,
                    dilation=sq.dilation, groups=sq.groups)
    with torch.no_grad():
        outs = dict(square=F.conv2d(x, sq.weight, **geometry))
        for b in ('hor', 'ver'):
            outs[b] = F.conv2d(x, _embed(getattr(acb, f'{b}_conv').weight, k,
                                         b), **geometry)
    return outs


@pytest.mark.parametrize('geometry', GEOMETRIES)
@pytest.mark.parametrize('mode', ['bn', 'online'])
def test_training_forward_is_the_three_branches(mode, geometry):
    block = _block(mode, geometry)
    x = torch.randn(4, block.square_conv.in_channels, 11, 9,
                    dtype=torch.float64)
    y = block(x)
    want = _expected(block, x)
    assert y.shape == want.shape
    assert torch.allclose(y, want, rtol=1e-10, atol=1e-10), \
        (y - want).abs().max()
    # ... and not the eval-mode function (running statistics), nor the
    # square branch alone: the check above can tell them apart
    with torch.no_grad():
        assert not torch.allclose(block.eval()(x), want, atol=1e-3)
        sq = block.square_conv
        alone = _batch_norm(sq(x), block.square_bn)
    assert not torch.allclose(alone, want, atol=1e-3)


@pytest.mark.parametrize('geometry', GEOMETRIES)
@pytest.mark.parametrize('mode', ['bn', 'online'])
def test_training_gradients_reach_every_branch(mode, geometry):
    block = _block(mode, geometry)
    x = torch.randn(4, block.square_conv.in_channels, 11, 9,
                    dtype=torch.float64, requires_grad=True)
    names, params = zip(*block.named_parameters())
    # the square conv, its BN and both branches' convs and BNs / scales
    assert {n.split('.')[0] for n in names} == {'square_conv', 'square_bn',
                                                'acb'}
    assert sum(n.startswith('acb.') for n in names) == (
        6 if mode == 'bn' else 4)
    y = block(x)
    weights = torch.randn(y.shape, dtype=torch.float64)
    got = torch.autograd.grad((y * weights).sum(), params + (x, ))
    want = torch.autograd.grad((_expected(block, x) * weights).sum(),
                               params + (x, ))
    for name, g, w in zip(names + ('input', ), got, want):
        assert g is not None and g.abs().max() > 0, name
        assert torch.allclose(g, w, rtol=1e-9, atol=1e-10), name


@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_training_updates_each_branch_bn_statistics(geometry):
    block = _block('bn', geometry)
    x = torch.randn(4, block.square_conv.in_channels, 11, 9,
                    dtype=torch.float64)
    bns = dict(square=block.square_bn, hor=block.acb.hor_bn,
               ver=block.acb.ver_bn)
    before = {n: (bn.running_mean.clone(), bn.running_var.clone())
              for n, bn in bns.items()}
    outs = _conv_inputs(block, x)
    block(x)
    for name, bn in bns.items():
        z, (mean0, var0) = outs[name], before[name]
        m = bn.momentum
        assert torch.allclose(bn.running_mean, (1 - m) * mean0 + m * z.mean(
            (0, 2, 3)), rtol=1e-10, atol=1e-12), name
        assert torch.allclose(bn.running_var, (1 - m) * var0 + m * z.var(
            (0, 2, 3), unbiased=True), rtol=1e-10, atol=1e-12), name
        assert int(bn.num_batches_tracked) == 1
