"""Put Asymmetric Convolution Blocks into any built network, and fold them out.

:func:`find_acb_sites` decides which convs of a module can carry an ACB and
which norm absorbs the branches' bias at fusion; :func:`convert_convs` swaps
those convs for :class:`~acnet_backbone.layers.ACConv2d` (same weight, same
state_dict key) and :func:`fuse_acb_sites` folds them back into plain convs.
The math itself lives in :mod:`acnet_backbone.fusion`; this module only
knows structure.

The following norm of a conv is found from how mmcv and mmdet build
networks, not by tracing: the ``norm`` of an mmcv ``ConvModule`` whose
``order`` puts it right after ``conv``; the next child of an
``nn.Sequential``; ``bns[i]`` / ``norms[i]`` beside ``convs[i]`` (Res2Net);
``normN`` / ``bnN`` beside ``convN`` (mmdet's residual blocks and stems).
"""
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from mmcv.cnn import ConvModule
from mmcv.cnn.bricks.wrappers import Conv2d as MMCVConv2d
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .fusion import fold_bias_into_bn
from .layers import ACB_MODES, ACConv2d

# Exact types whose forward is a plain cross-correlation (mmcv's Conv2d only
# adds empty-input handling): other subclasses (mmcv's ConvWS / ConvAWS /
# SAC, deformable convs) transform weights or sample elsewhere, so their
# kernels cannot absorb the asymmetric ones.
FUSABLE_CONVS: Tuple[type, ...] = (nn.Conv2d, MMCVConv2d)
_NORM_LISTS = {'convs': ('bns', 'norms')}


class ACBSite(NamedTuple):
    """A conv that gets an ACB and the batch norm that absorbs the fused
    branches' bias (``None``: the conv's own bias does, or there is none, in
    ``'online'`` mode)."""
    conv: str
    norm: Optional[str]


def is_norm(module: Optional[nn.Module]) -> bool:
    """Whether ``module`` is a normalisation layer (batch, group, layer or
    instance norm)."""
    return isinstance(module, (_BatchNorm, nn.GroupNorm, nn.LayerNorm,
                               nn.modules.instancenorm._InstanceNorm))


def _following_norm(named: Dict[str, nn.Module],
                    conv_name: str) -> Optional[nn.Module]:
    """The norm applied directly to the output of ``conv_name``, if any."""
    parent_name, _, attr = conv_name.rpartition('.')
    parent = named[parent_name]
    if isinstance(parent, ConvModule):
        order = tuple(parent.order)
        if attr == 'conv' and parent.with_norm and \
                order.index('norm') == order.index('conv') + 1:
            return parent.norm
        return None
    if isinstance(parent, nn.Sequential):
        keys = list(parent._modules)
        idx = keys.index(attr)
        following = parent._modules[keys[idx + 1]] if idx + 1 < len(
            keys) else None
        return following if is_norm(following) else None
    if isinstance(parent, nn.ModuleList):
        owner_name, _, list_name = parent_name.rpartition('.')
        for norms in _NORM_LISTS.get(list_name, ()):
            norm_list = getattr(named[owner_name], norms, None)
            if isinstance(norm_list, nn.ModuleList) and int(attr) < len(
                    norm_list):
                return norm_list[int(attr)]
        return None
    match = re.fullmatch(r'conv(\d*)', attr)
    if match:
        for candidate in (f'norm{match[1]}', f'bn{match[1]}'):
            norm = getattr(parent, candidate, None)
            if is_norm(norm):
                return norm
    return None


def _absorbs_bias(norm: Optional[nn.Module]) -> bool:
    return isinstance(norm, _BatchNorm) and norm.running_mean is not None


def _why_not(conv: nn.Module) -> Optional[str]:
    """Why ``conv`` cannot carry an ACB, or None when it can."""
    k_h, k_w = conv.kernel_size
    if k_h != k_w or k_h % 2 == 0:
        return f'{k_h}x{k_w} kernel (an ACB needs an odd square one)'
    if isinstance(conv.padding, str):
        return f'padding={conv.padding!r} (an ACB needs explicit padding)'
    if conv.padding_mode != 'zeros':
        return f'padding_mode={conv.padding_mode!r} (fuses only with zeros)'
    return None


def find_acb_sites(module: nn.Module,
                   acb_mode: str = 'bn',
                   exclude: Sequence[str] = ()) -> Tuple[List[ACBSite],
                                                         Dict[str, str]]:
    """Which convs of ``module`` get an ACB, and which are kept and why.

    A conv gets an ACB when it is exactly an ``nn.Conv2d`` (not a
    weight-transforming or deformable subclass) with a kernel larger than 1,
    odd and square, zero padding, and no ``exclude`` pattern matches its name.
    In ``'bn'`` mode the branches' BNs leave a bias at fusion, so the conv
    also needs its own bias or a following batch norm (with running
    statistics) to absorb it.

    Args:
        module (nn.Module): a built network.
        acb_mode (str): ``'bn'`` or ``'online'``. Defaults to 'bn'.
        exclude (Sequence[str]): regular expressions; a conv whose module
            name any of them finds (``re.search``) is kept. Defaults to ().

    Returns:
        tuple[list[ACBSite], dict[str, str]]: the sites, in module order, and
        ``{name: reason}`` for every conv with a kernel larger than 1 that is
        kept.

    Raises:
        ValueError: a bad pattern, or one that matches no conv that would
            get an ACB.
    """
    if acb_mode not in ACB_MODES:
        raise ValueError(f'acb_mode must be one of {ACB_MODES}, got '
                         f'{acb_mode!r}')
    if isinstance(exclude, str):
        exclude = [exclude]
    try:
        patterns = [re.compile(p) for p in exclude]
    except (TypeError, re.error) as err:
        raise ValueError(f'bad exclude pattern: {err}') from None
    named = dict(module.named_modules())
    sites, kept = [], {}
    used, claimed = set(), {}
    for name, conv in named.items():
        if not isinstance(conv, nn.Conv2d) or max(conv.kernel_size) == 1:
            continue
        if type(conv) not in FUSABLE_CONVS:
            kept[name] = f'{type(conv).__name__} (not a plain nn.Conv2d)'
            continue
        reason = _why_not(conv)
        if reason:
            kept[name] = reason
            continue
        hits = [p.pattern for p in patterns if p.search(name)]
        if hits:
            used.update(hits)
            kept[name] = f'excluded by {hits[0]!r}'
            continue
        norm = _following_norm(named, name)
        if acb_mode == 'bn' and conv.bias is None and not _absorbs_bias(norm):
            what = type(norm).__name__ if norm is not None else 'no norm'
            kept[name] = (f'followed by {what} and without bias: nothing can '
                          "absorb the branch BNs' bias (acb_mode='online' "
                          'can)')
            continue
        norm_name = None
        if acb_mode == 'bn' and conv.bias is None:
            norm_name = next(n for n, m in named.items() if m is norm)
            if norm_name in claimed:  # one running mean, one bias
                kept[name] = (f'shares its norm {norm_name} with '
                              f'{claimed[norm_name]}')
                continue
            claimed[norm_name] = name
        sites.append(ACBSite(name, norm_name))
    unused = [p.pattern for p in patterns if p.pattern not in used]
    if unused:
        raise ValueError(f'exclude pattern {unused[0]!r} matches no conv that '
                         f'would get an ACB in {type(module).__name__}')
    return sites, kept


def convert_convs(module: nn.Module,
                  sites: Sequence[ACBSite],
                  acb_mode: str = 'bn',
                  gamma_init: float = 0.0,
                  norm_cfg: Optional[dict] = None) -> None:
    """Replace each site's conv by an :class:`ACConv2d` with the same
    kernel, bias, ``requires_grad`` and train/eval mode, in place.

    The branches of a frozen conv (``requires_grad=False``: a frozen stage)
    are frozen too.

    Args:
        module (nn.Module): the network.
        sites (Sequence[ACBSite]): from :func:`find_acb_sites`.
        acb_mode (str): ``'bn'`` or ``'online'``. Defaults to 'bn'.
        gamma_init (float): initial gamma (scale) of the branches.
            Defaults to 0.0.
        norm_cfg (dict, optional): the branch norms. Defaults to BN.
    """
    for site in sites:
        parent_name, _, attr = site.conv.rpartition('.')
        parent = module.get_submodule(parent_name)
        conv = getattr(parent, attr)
        new = ACConv2d.from_conv(conv, acb_mode=acb_mode, norm_cfg=norm_cfg,
                                 gamma_init=gamma_init)
        new.weight.requires_grad_(conv.weight.requires_grad)
        if conv.bias is not None:
            new.bias.requires_grad_(conv.bias.requires_grad)
        if not conv.weight.requires_grad:
            new.acb.requires_grad_(False)
        setattr(parent, attr, new)


def fuse_acb_sites(module: nn.Module, sites: Sequence[ACBSite]) -> int:
    """Fold the ACB of every site into a plain conv, in place (eval
    semantics); the bias of ``'bn'`` branches goes into the conv's own bias
    or, when it has none, into the site's following BN's running mean.

    Everything is checked before anything changes: an error leaves
    ``module`` as it was.

    Args:
        module (nn.Module): the network holding the ACBs.
        sites (Sequence[ACBSite]): from :func:`find_acb_sites`; a site whose
            conv is no longer an :class:`ACConv2d` is skipped.

    Returns:
        int: the number of convs fused.

    Raises:
        TypeError: a branch norm cannot be folded (not a batch norm with
            running statistics), or a site's norm cannot absorb the bias.
    """
    plans = []
    for site in sites:
        parent_name, _, attr = site.conv.rpartition('.')
        parent = module.get_submodule(parent_name)
        conv = getattr(parent, attr)
        if not isinstance(conv, ACConv2d):
            continue
        try:
            plain, extra = conv.fuse()
        except (TypeError, ValueError) as err:
            raise TypeError(f'{site.conv}: {err}') from None
        norm = None
        if extra is not None:
            norm = module.get_submodule(site.norm) if site.norm else None
            if not _absorbs_bias(norm) and norm is not None:
                raise TypeError(
                    f'{site.norm} is a {type(norm).__name__}, which cannot '
                    'absorb the bias of the fused asymmetric branches: only a '
                    'batch norm with running statistics can (use BN/SyncBN, '
                    "or acb_mode='online'); nothing fused")
            if not _absorbs_bias(norm):
                raise TypeError(
                    f'{site.conv}: nothing absorbs the fused branches\' bias '
                    f'({site.norm or "no following norm"}); nothing fused')
        plain.weight.requires_grad_(conv.weight.requires_grad)
        if conv.bias is not None:
            plain.bias.requires_grad_(conv.bias.requires_grad)
        plans.append((parent, attr, plain, extra, norm))
    for parent, attr, plain, extra, norm in plans:
        if extra is not None:
            fold_bias_into_bn(extra, norm)
        setattr(parent, attr, plain)
    return len(plans)


def count_acb(module: nn.Module) -> int:
    """Number of :class:`ACConv2d` in ``module``."""
    return sum(isinstance(m, ACConv2d) for m in module.modules())

