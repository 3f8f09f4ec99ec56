"""The one home of the fusion math: pure functions on tensors and norm layers.

Every block, backbone, tool and test that folds a BN into a conv, adds an
asymmetric kernel into a square one or pushes a bias into a following BN goes
through these functions, so the formulas exist once.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def bn_scale_shift(bn: nn.Module) -> Tuple[Tensor, Tensor]:
    """Return the per-channel ``(scale, shift)`` of a BN in eval semantics.

    ``bn(x) == x * scale[:, None, None] + shift[:, None, None]`` for a BN in
    eval mode, using the layer's own ``eps``.

    Args:
        bn (nn.Module): any ``_BatchNorm`` (BN, SyncBN, ...) that tracks
            running statistics.

    Returns:
        tuple[Tensor, Tensor]: scale and shift, each of shape ``[C]``.
    """
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f'cannot fuse {type(bn).__name__}: only batch norms '
                        '(BN, SyncBN, ...) are linear at inference')
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f'cannot fuse {type(bn).__name__} with '
                         'track_running_stats=False: it has no running '
                         'statistics')
    std = torch.sqrt(bn.running_var + bn.eps)
    weight = bn.weight if bn.affine else torch.ones_like(std)
    bias = bn.bias if bn.affine else torch.zeros_like(std)
    scale = weight / std
    return scale, bias - bn.running_mean * scale


def fuse_conv_bn(conv_weight: Tensor,
                 bn: nn.Module,
                 conv_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Fold a BN (eval semantics) into the conv that precedes it.

    Args:
        conv_weight (Tensor): the conv kernel ``[C_out, C_in/groups, kh, kw]``.
        bn (nn.Module): the following batch norm over ``C_out`` channels.
        conv_bias (Tensor, optional): the conv's bias. Defaults to None.

    Returns:
        tuple[Tensor, Tensor]: kernel and bias of the single equivalent conv.
    """
    scale, shift = bn_scale_shift(bn)
    kernel = conv_weight * scale.reshape(-1, 1, 1, 1)
    bias = shift if conv_bias is None else shift + conv_bias * scale
    return kernel, bias


def add_to_center(square: Tensor, kernel: Tensor) -> Tensor:
    """Add a ``1 x k`` or ``k x 1`` kernel into the centre row / column of a
    ``k x k`` kernel (out of place, differentiable).

    A ``1 x 1`` kernel lands on the centre point, so the same function also
    folds an identity or a 1x1 branch.

    Args:
        square (Tensor): ``[C_out, C_in/groups, k, k]``.
        kernel (Tensor): ``[C_out, C_in/groups, kh, kw]`` with ``kh`` and
            ``kw`` each either 1 or ``k``.

    Returns:
        Tensor: the sum, shaped like ``square``.
    """
    kh, kw = kernel.shape[-2:]
    k_h, k_w = square.shape[-2:]
    if kernel.shape[:2] != square.shape[:2] or kh not in (1, k_h) or \
            kw not in (1, k_w):
        raise ValueError(f'cannot add a kernel of shape {tuple(kernel.shape)}'
                         f' into one of shape {tuple(square.shape)}')
    top, left = (k_h - kh) // 2, (k_w - kw) // 2
    return square + nn.functional.pad(
        kernel, (left, k_w - kw - left, top, k_h - kh - top))


def fold_bias_into_bn(bias: Tensor, bn: nn.Module) -> None:
    """Make ``bn(y + bias)`` computable as ``bn'(y)`` by shifting the BN's
    running mean, in place (eval semantics).

    Args:
        bias (Tensor): ``[C]``, added to the BN's input.
        bn (nn.Module): the ``_BatchNorm`` that absorbs it.
    """
    if not isinstance(bn, _BatchNorm) or bn.running_mean is None:
        raise TypeError(
            f'a {type(bn).__name__} cannot absorb the bias of the fused '
            'asymmetric branches: only a batch norm with running statistics '
            'can (use a BN / SyncBN norm_cfg, or acb_mode="online")')
    with torch.no_grad():
        bn.running_mean.sub_(bias.to(bn.running_mean))
