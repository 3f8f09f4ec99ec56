"""Asymmetric Convolution Blocks (ACNet, Ding et al., ICCV 2019).

``ACBranches`` is the pair of asymmetric branches (a ``1 x k`` and a ``k x 1``
conv) aligned with a ``k x k`` conv of any stride, padding and dilation.
``ACConv2d`` is a square ``nn.Conv2d`` that carries them (the form used inside
ResNet blocks, where the block's own norm follows the sum) and ``ACBlock`` is
ACNet's standalone block with a BN on every branch.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor, nn

from .fusion import add_to_center, fuse_conv_bn

IntOrPair = Union[int, Tuple[int, int]]
ACB_MODES = ('bn', 'online')


def _pair(value, name: str) -> Tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f'{name} must be an int or a pair of ints, got {value!r}')


def _check_geometry(kernel_size, stride, padding, dilation, groups,
                    padding_mode):
    """Validate ``nn.Conv2d``-style arguments of a square kernel; return the
    kernel size and the stride, padding and dilation as pairs."""
    k_h, k_w = _pair(kernel_size, 'kernel_size')
    if k_h != k_w:
        raise ValueError(f'an ACB needs a square kernel, got {k_h}x{k_w}')
    if k_h < 1 or k_h % 2 == 0:
        raise ValueError(f'an ACB needs an odd kernel size, got {k_h}: the '
                         'asymmetric kernels must land on a centre row/column')
    stride, padding, dilation = (_pair(v, n) for v, n in (
        (stride, 'stride'), (padding, 'padding'), (dilation, 'dilation')))
    if min(stride + dilation) < 1 or min(padding) < 0:
        raise ValueError('stride and dilation must be >= 1 and padding >= 0, '
                         f'got {stride}, {dilation}, {padding}')
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f'groups must be a positive int, got {groups!r}')
    if padding_mode != 'zeros':
        raise ValueError('an ACB fuses exactly only with zero padding, got '
                         f'padding_mode={padding_mode!r}')
    return k_h, stride, padding, dilation


def branch_norm_cfg(norm_cfg: Optional[dict]) -> dict:
    """The config of an asymmetric branch's norm: ``norm_cfg`` (default BN)
    with ``requires_grad=True``, since branch norms have nothing pretrained
    to keep frozen."""
    return dict(norm_cfg or dict(type='BN'), requires_grad=True)


class ACBranches(nn.Module):
    """The two asymmetric branches that accompany a ``k x k`` conv.

    The ``1 x k`` branch sees the input rows that the square kernel's centre
    row sees and the ``k x 1`` branch the columns of its centre column, so that
    each branch kernel can be added into the square kernel. With padding ``p``
    and dilation ``d`` a branch needs padding ``p - d * (k // 2)`` across its
    length-1 axis; where that is negative the input is cropped instead.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): the odd square kernel size ``k`` (>= 3).
        stride, padding, dilation (int | tuple[int, int]): of the square conv.
        groups (int): of the square conv. Defaults to 1.
        acb_mode (str): ``'bn'``: a BN per branch (ACNet); ``'online'``: a
            learnable per-channel scale per branch, the branch kernels being
            merged into the square kernel at every forward. Defaults to 'bn'.
        norm_cfg (dict): the branch norms' config in ``'bn'`` mode. Defaults
            to ``dict(type='BN')``. Its ``requires_grad`` is ignored: the
            branch norms are new, with no pretrained values to keep, so they
            are always built trainable (a ``requires_grad=False`` that
            freezes a pretrained network's norms, as in mmdet's caffe-style
            configs, would otherwise leave branches with ``gamma_init=0``
            outputting zero for the whole of training). Freezing a whole
            stage (``frozen_stages``) still freezes its branches.
        gamma_init (float): initial BN gamma (``'bn'``) or scale
            (``'online'``) of both branches. Defaults to 1.0.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: IntOrPair = 1,
                 padding: IntOrPair = 0,
                 dilation: IntOrPair = 1,
                 groups: int = 1,
                 acb_mode: str = 'bn',
                 norm_cfg: Optional[dict] = None,
                 gamma_init: float = 1.0) -> None:
        super().__init__()
        if acb_mode not in ACB_MODES:
            raise ValueError(f'acb_mode must be one of {ACB_MODES}, got '
                             f'{acb_mode!r}')
        k, stride, padding, dilation = _check_geometry(
            kernel_size, stride, padding, dilation, groups, 'zeros')
        if k < 3:
            raise ValueError('asymmetric branches need a kernel size >= 3')
        self.acb_mode = acb_mode
        self.gamma_init = float(gamma_init)
        half = k // 2
        # (pad_h, pad_w) of each branch; a negative value means cropping.
        pads = {'hor': (padding[0] - dilation[0] * half, padding[1]),
                'ver': (padding[0], padding[1] - dilation[1] * half)}
        shapes = {'hor': (1, k), 'ver': (k, 1)}
        self._crops = {}
        for name in ('hor', 'ver'):
            pad = pads[name]
            self._crops[name] = (max(-pad[0], 0), max(-pad[1], 0))
            conv = nn.Conv2d(in_channels, out_channels, shapes[name],
                             stride=stride, padding=(max(pad[0], 0),
                                                     max(pad[1], 0)),
                             dilation=dilation, groups=groups, bias=False)
            self.add_module(f'{name}_conv', conv)
            if acb_mode == 'bn':
                norm = build_norm_layer(branch_norm_cfg(norm_cfg),
                                        out_channels)[1]
                self.add_module(f'{name}_bn', norm)
            else:
                self.register_parameter(
                    f'{name}_scale',
                    nn.Parameter(torch.empty(out_channels)))
        self.reset_gamma()

    def reset_gamma(self) -> None:
        """Set both branches' gamma (BN weight) or scale to ``gamma_init``."""
        with torch.no_grad():
            for name in ('hor', 'ver'):
                if self.acb_mode == 'bn':
                    bn = getattr(self, f'{name}_bn')
                    if getattr(bn, 'weight', None) is not None:
                        bn.weight.fill_(self.gamma_init)
                else:
                    getattr(self, f'{name}_scale').fill_(self.gamma_init)

    def gamma_params(self):
        """The tensors that ``gamma_init`` initialises, keyed by name."""
        if self.acb_mode == 'bn':
            return {f'{n}_bn.weight': getattr(self, f'{n}_bn').weight
                    for n in ('hor', 'ver')
                    if getattr(getattr(self, f'{n}_bn'), 'weight', None)
                    is not None}
        return {f'{n}_scale': getattr(self, f'{n}_scale')
                for n in ('hor', 'ver')}

    def _branch_input(self, x: Tensor, name: str) -> Tensor:
        crop_h, crop_w = self._crops[name]
        if crop_h or crop_w:
            x = x[..., crop_h:x.shape[-2] - crop_h, crop_w:x.shape[-1] - crop_w]
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Sum of both branch outputs (``'bn'`` mode only; in ``'online'``
        mode the branches act through :meth:`merge_into`)."""
        if self.acb_mode != 'bn':
            raise RuntimeError('online branches are merged into the square '
                               'kernel (merge_into), not run on their own')
        return (self.hor_bn(self.hor_conv(self._branch_input(x, 'hor'))) +
                self.ver_bn(self.ver_conv(self._branch_input(x, 'ver'))))

    def merge_into(self, square_kernel: Tensor) -> Tensor:
        """``'online'`` mode: the square kernel plus both scaled branch
        kernels, differentiably (used at every forward)."""
        kernel = add_to_center(
            square_kernel, self.hor_conv.weight * self.hor_scale.reshape(
                -1, 1, 1, 1))
        return add_to_center(
            kernel, self.ver_conv.weight * self.ver_scale.reshape(-1, 1, 1, 1))

    def equivalent_kernel_bias(self,
                               square_kernel: Tensor) -> Tuple[Tensor, Tensor]:
        """Fold both branches into ``square_kernel`` (eval semantics).

        Returns:
            tuple[Tensor, Tensor]: the summed kernel and the branches' bias
            (zero in ``'online'`` mode).
        """
        if self.acb_mode == 'online':
            kernel = self.merge_into(square_kernel)
            return kernel, kernel.new_zeros(kernel.shape[0])
        bias = square_kernel.new_zeros(square_kernel.shape[0])
        for name in ('hor', 'ver'):
            k, b = fuse_conv_bn(
                getattr(self, f'{name}_conv').weight, getattr(self, f'{name}_bn'))
            square_kernel = add_to_center(square_kernel, k)
            bias = bias + b
        return square_kernel, bias

    def extra_repr(self) -> str:
        return f'acb_mode={self.acb_mode!r}, crops={self._crops}'


def _plain_conv_like(conv: nn.Conv2d, kernel: Tensor,
                     bias: Optional[Tensor]) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` with ``conv``'s geometry holding ``kernel`` and
    ``bias`` (detached copies)."""
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      stride=conv.stride, padding=conv.padding,
                      dilation=conv.dilation, groups=conv.groups,
                      bias=bias is not None, device=kernel.device,
                      dtype=kernel.dtype)
    with torch.no_grad():
        plain.weight.copy_(kernel.detach())
        if bias is not None:
            plain.bias.copy_(bias.detach())
    plain.train(conv.training)
    return plain


class ACConv2d(nn.Conv2d):
    """A ``k x k`` conv with parallel asymmetric branches (no norm after the
    sum: inside a residual block the block's own norm follows).

    ``weight`` (and ``bias``) are the square kernel's, so a plain conv's
    state_dict keys load unchanged; the branches live under ``acb``.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: as for ``nn.Conv2d`` (square, odd kernel >= 3, zero
            padding).
        acb_mode (str): see :class:`ACBranches`. Defaults to 'bn'.
        norm_cfg (dict, optional): branch norms. Defaults to BN.
        gamma_init (float): see :class:`ACBranches`. Defaults to 0.0.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: IntOrPair,
                 stride: IntOrPair = 1,
                 padding: IntOrPair = 0,
                 dilation: IntOrPair = 1,
                 groups: int = 1,
                 bias: bool = False,
                 acb_mode: str = 'bn',
                 norm_cfg: Optional[dict] = None,
                 gamma_init: float = 0.0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias)
        self.acb = ACBranches(in_channels, out_channels, self.kernel_size[0],
                              stride, padding, dilation, groups, acb_mode,
                              norm_cfg, gamma_init)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, **kwargs) -> 'ACConv2d':
        """Wrap an existing plain conv, keeping its kernel (and bias)."""
        _check_geometry(conv.kernel_size, conv.stride, conv.padding,
                        conv.dilation, conv.groups, conv.padding_mode)
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size,
                  conv.stride, conv.padding, conv.dilation, conv.groups,
                  conv.bias is not None, **kwargs).to(conv.weight)
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        new.train(conv.training)
        return new

    def forward(self, x: Tensor) -> Tensor:
        if self.acb.acb_mode == 'online':
            return F.conv2d(x, self.acb.merge_into(self.weight), self.bias,
                            self.stride, self.padding, self.dilation,
                            self.groups)
        return super().forward(x) + self.acb(x)

    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """The single conv's (kernel, bias), eval semantics."""
        kernel, bias = self.acb.equivalent_kernel_bias(self.weight)
        if self.bias is not None:
            bias = bias + self.bias
        return kernel, bias

    def fuse(self) -> Tuple[nn.Conv2d, Optional[Tensor]]:
        """Fold the branches into a plain conv (eval semantics).

        Returns:
            tuple[nn.Conv2d, Tensor | None]: the plain conv with this conv's
            geometry and bias setting, and, when it has no bias, the bias the
            branches add (``None`` in ``'online'`` mode, where it is zero),
            which the caller folds into the following norm.
        """
        kernel, bias = self.get_equivalent_kernel_bias()
        if self.bias is not None:
            return _plain_conv_like(self, kernel, bias), None
        extra = None if self.acb.acb_mode == 'online' else bias.detach()
        return _plain_conv_like(self, kernel, None), extra


class ACBlock(nn.Module):
    """ACNet's Asymmetric Convolution Block: ``k x k`` conv + BN, ``1 x k``
    conv + BN and ``k x 1`` conv + BN, summed, no activation.

    From "ACNet: Strengthening the Kernel Skeletons for Powerful CNN via
    Asymmetric Convolution Blocks" (Ding et al., ICCV 2019); the reference
    implementation is DingXiaoH/ACNet. Unlike that code this block aligns the
    branches for any dilation (padding ``p - d * (k // 2)``) and for paddings
    smaller than ``d * (k // 2)`` (the branch input is cropped).

    The arguments follow ``nn.Conv2d``. After :meth:`switch_to_deploy` the
    block is a single ``nn.Conv2d`` with bias (``fused_conv``) computing the
    same function in eval semantics.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int | tuple[int, int]): odd, square; 1 degenerates to a
            single conv + BN.
        stride (int | tuple[int, int]): Defaults to 1.
        padding (int | tuple[int, int]): any value >= 0. Defaults to 0.
        dilation (int | tuple[int, int]): Defaults to 1.
        groups (int): Defaults to 1.
        padding_mode (str): only ``'zeros'`` fuses exactly. Defaults to
            'zeros'.
        deploy (bool): build the fused single conv directly. Defaults to False.
        acb_mode (str): ``'bn'`` (ACNet) or ``'online'`` (branch kernels
            scaled per channel and merged into the square kernel every
            forward, then the square BN). Defaults to 'bn'.
        norm_cfg (dict, optional): the norms. Defaults to ``dict(type='BN')``.
            The branch norms ignore its ``requires_grad`` (always trainable,
            see :class:`ACBranches`).
        acb_gamma_init (float): initial gamma (scale) of the asymmetric
            branches. Defaults to 1.0, as in ACNet.

    Example:
        >>> import torch
        >>> from acnet_backbone import ACBlock
        >>> block = ACBlock(8, 16, 3, stride=2, padding=1).eval()
        >>> x = torch.rand(1, 8, 32, 32)
        >>> y = block(x)
        >>> tuple(y.shape)
        (1, 16, 16, 16)
        >>> block.switch_to_deploy()
        >>> torch.allclose(block(x), y, atol=1e-5)
        True
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: IntOrPair,
                 stride: IntOrPair = 1,
                 padding: IntOrPair = 0,
                 dilation: IntOrPair = 1,
                 groups: int = 1,
                 padding_mode: str = 'zeros',
                 deploy: bool = False,
                 acb_mode: str = 'bn',
                 norm_cfg: Optional[dict] = None,
                 acb_gamma_init: float = 1.0) -> None:
        super().__init__()
        k, stride, padding, dilation = _check_geometry(
            kernel_size, stride, padding, dilation, groups, padding_mode)
        if acb_mode not in ACB_MODES:
            raise ValueError(f'acb_mode must be one of {ACB_MODES}, got '
                             f'{acb_mode!r}')
        self.acb_mode = acb_mode
        geometry = dict(stride=stride, padding=padding, dilation=dilation,
                        groups=groups)
        self.deploy = deploy
        if deploy:
            self.fused_conv = nn.Conv2d(in_channels, out_channels, k,
                                        bias=True, **geometry)
            return
        self.square_conv = nn.Conv2d(in_channels, out_channels, k,
                                     bias=False, **geometry)
        self.square_bn = build_norm_layer(norm_cfg or dict(type='BN'),
                                          out_channels)[1]
        self.acb = None
        if k > 1:
            self.acb = ACBranches(in_channels, out_channels, k,
                                  acb_mode=acb_mode, norm_cfg=norm_cfg,
                                  gamma_init=acb_gamma_init, **geometry)

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.fused_conv(x)
        if self.acb is None:
            return self.square_bn(self.square_conv(x))
        if self.acb_mode == 'online':
            conv = self.square_conv
            kernel = self.acb.merge_into(conv.weight)
            return self.square_bn(
                F.conv2d(x, kernel, None, conv.stride, conv.padding,
                         conv.dilation, conv.groups))
        return self.square_bn(self.square_conv(x)) + self.acb(x)

    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        """The (kernel, bias) of the single equivalent conv, eval semantics.

        Uses each BN's own ``eps``.
        """
        if self.deploy:
            return self.fused_conv.weight, self.fused_conv.bias
        square = self.square_conv.weight
        if self.acb is None:
            return fuse_conv_bn(square, self.square_bn)
        if self.acb_mode == 'online':
            return fuse_conv_bn(self.acb.merge_into(square), self.square_bn)
        kernel, bias = fuse_conv_bn(square, self.square_bn)
        kernel, branch_bias = self.acb.equivalent_kernel_bias(kernel)
        return kernel, bias + branch_bias

    def switch_to_deploy(self) -> None:
        """Replace the branches by the single equivalent conv, in place.

        Idempotent; the new parameters are detached copies.
        """
        if self.deploy:
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        self.fused_conv = _plain_conv_like(self.square_conv, kernel, bias)
        for name in ('square_conv', 'square_bn', 'acb'):
            delattr(self, name)
        self.deploy = True
