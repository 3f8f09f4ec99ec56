"""``ACNet``: Asymmetric Convolution Blocks in any mmdet backbone.

``type='ACNet', backbone=dict(type='CSPNeXt', ...)`` builds the stock
backbone and swaps its convs for :class:`~acnet_backbone.layers.ACConv2d` in
place. The result is not a module around the backbone but the backbone
itself, as an instance of a subclass of its own class (``ACNetCSPNeXt``
derives from ``ACNet`` and ``CSPNeXt``): its forward, ``frozen_stages``,
``norm_eval``, ``init_cfg`` and state_dict keys are the stock class's, so
plain checkpoints (``Pretrained``, ``load_from``) load unchanged and a fused
one loads strictly into the stock class.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet.registry import MODELS
from mmdet.utils import OptConfigType, OptMultiConfig
from mmengine.logging import MMLogger
from torch import Tensor, nn

from ..compat import register_load_state_dict_pre_hook
from ..convert import (ACBSite, convert_convs, count_acb, find_acb_sites,
                       fuse_acb_sites)
from ..layers import ACB_MODES, ACBranches, ACConv2d, branch_norm_cfg
from ..state_fit import state_fit
from .base import PretrainedMismatchError

_INHERIT = object()  # ACNet(init_cfg=...) not given: keep the backbone's
_CLASSES: Dict[type, type] = {}
WRAPPER_TYPES = ('ACNet', 'mmdet.ACNet')


def acnet_class(stock_cls: type) -> type:
    """The ``ACNet`` subclass of ``stock_cls`` (one per class, cached)."""
    if stock_cls not in _CLASSES:
        _CLASSES[stock_cls] = type(
            f'ACNet{stock_cls.__name__}', (ACNet, stock_cls),
            dict(__module__=__name__, stock_class=stock_cls,
                 __doc__=f'{stock_cls.__name__} with Asymmetric Convolution '
                 'Blocks: see :class:`ACNet`.'))
    return _CLASSES[stock_cls]


def _restore(stock_cls: type) -> 'ACNet':
    """Unpickling / deepcopy helper: an empty instance to fill."""
    return nn.Module.__new__(acnet_class(stock_cls))


def _branch_norm_cfg(acb_norm_cfg: OptConfigType,
                     backbone: dict) -> dict:
    """Explicit ``acb_norm_cfg``, else the backbone's ``norm_cfg`` when it is
    a batch norm, else BN; always trainable."""
    if acb_norm_cfg is not None:
        return branch_norm_cfg(acb_norm_cfg)
    cfg = backbone.get('norm_cfg')
    if isinstance(cfg, dict) and str(cfg.get('type', '')).split('.')[-1] in (
            'BN', 'BN2d', 'SyncBN', 'MMSyncBN'):
        return branch_norm_cfg(cfg)
    return dict(type='BN', requires_grad=True)


@MODELS.register_module()
class ACNet:
    """Asymmetric Convolution Blocks in any backbone, fused back into it.

    From "ACNet: Strengthening the Kernel Skeletons for Powerful CNN via
    Asymmetric Convolution Blocks" (Ding et al., ICCV 2019; reference code
    DingXiaoH/ACNet), which strengthens VGG, ResNet, DenseNet and MobileNet
    alike. ``ACNet(backbone=dict(type=...))`` builds the backbone from
    mmdet's registry, then every exact ``nn.Conv2d`` with an odd square
    kernel larger than 1 (any stride, padding, dilation and groups,
    depthwise included) becomes an :class:`~acnet_backbone.layers.ACConv2d`:
    the square conv keeps its weight and state_dict key, and a ``1 x k`` and
    a ``k x 1`` branch are added to its output. Kept as they are: 1x1 convs,
    convs that cannot fuse exactly (deformable, weight-standardised
    ``ConvWS`` / ``ConvAWS`` / SAC, even or non-square kernels, non-zero
    padding modes), convs that an ``exclude`` pattern matches, and, in
    ``'bn'`` mode, convs with neither a bias nor a following batch norm
    (nothing could absorb the branch BNs' bias). Verified on mmdet's ResNet,
    ResNeXt, RegNet, Res2Net, HRNet, CSPDarknet, CSPNeXt and MobileNetV2.

    The object built is the backbone itself, of class
    ``ACNet<Stock>`` (a subclass of ``ACNet`` and of the stock class, so
    ``isinstance(net, CSPNeXt)`` holds): forward, ``frozen_stages``,
    ``norm_eval``, ``init_cfg`` and the state_dict keys are the stock
    class's, plus ``*.acb.*`` keys for the branches. A plain checkpoint loads
    unchanged (``init_cfg=dict(type='Pretrained', ...)`` inside ``backbone``,
    or the Runner's ``load_from``), and with ``acb_gamma_init=0`` the network
    computes the plain backbone's function at step 0. A ``Pretrained``
    checkpoint of another architecture (a shape mismatch, or backbone
    tensors missing) raises :class:`PretrainedMismatchError` before
    anything is loaded.

    :meth:`switch_to_deploy` folds every branch into its square kernel (the
    branch bias into the conv's bias, or into the following BN's running
    mean): the backbone then holds no ACB, and its ``state_dict`` loads with
    ``strict=True`` into the stock class built from ``backbone`` and computes
    the same function. ``tools/fuse.py`` writes that stock config.

    Args:
        backbone (dict): the config of any mmdet backbone (its ``init_cfg``
            included).
        acb_mode (str): ``'bn'`` (ACNet: a BN per branch) or ``'online'``
            (a learnable per-channel scale per branch, the branch kernels
            merged into the square kernel at every forward). Defaults to
            'bn'.
        acb_gamma_init (float): initial gamma (scale) of the branches.
            Survives ``init_weights``. The default 1/3 is the start that
            fine-tuned best from plain pretrained weights; with 0 the network
            starts as exactly the plain backbone, but the branch kernels get
            no gradient until gamma moves; 1.0 is ACNet's from-scratch start.
            Defaults to 1/3.
        acb_norm_cfg (dict, optional): the branch norms (``'bn'`` mode).
            Defaults to the backbone's ``norm_cfg`` when that is a batch norm
            (BN, SyncBN), else BN. Branch norms are always trainable: a
            ``requires_grad=False`` (mmdet's caffe-style configs freeze the
            pretrained norms so) applies to the pretrained norms only.
        exclude (Sequence[str]): regular expressions; convs whose module
            name one finds (``re.search``, e.g. ``'^stem'``) keep their type.
            A pattern that matches no conv that would get an ACB is an error.
            Defaults to ().
        acb_norm_eval (bool): under the backbone's ``norm_eval=True`` (which
            freezes the pretrained norms' statistics), also freeze the branch
            norms. By default (False) the new branch norms of trainable parts
            keep training, as in :class:`~acnet_backbone.ACResNet`; in frozen
            parts (``frozen_stages``; a conv with ``requires_grad=False``)
            the branches stay frozen with the rest. Defaults to False.
        deploy (bool): build the fused structure (the stock backbone, no
            ACB). Defaults to False.
        init_cfg (dict | list[dict], optional): when given, replaces the
            backbone's ``init_cfg`` (so code that sets
            ``model.backbone.init_cfg = None`` works on the wrapper too).
            Defaults to the backbone's own.

    Raises:
        ValueError: a bad ``acb_mode``, a backbone that is already an ACNet
            or holds ACBs, no conv that can get an ACB, or an ``exclude``
            pattern that matches none (one line; nothing is built).

    Example:
        >>> import torch
        >>> import acnet_backbone  # registers ACNet
        >>> from mmdet.registry import MODELS
        >>> net = MODELS.build(dict(
        ...     type='ACNet', acb_gamma_init=0.5,
        ...     backbone=dict(type='CSPNeXt', deepen_factor=0.167,
        ...                   widen_factor=0.125))).eval()
        >>> type(net).__name__, type(net).stock_class.__name__
        ('ACNetCSPNeXt', 'CSPNeXt')
        >>> x = torch.rand(1, 3, 64, 64)
        >>> [tuple(o.shape) for o in net(x)]
        [(1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
        >>> before = net(x)
        >>> net.switch_to_deploy()
        >>> all(torch.allclose(a, b, atol=1e-4)
        ...     for a, b in zip(before, net(x)))
        True
    """

    stock_class: Optional[type] = None  # set on each ACNet<Stock> subclass

    def __new__(cls,
                backbone: OptConfigType = None,
                acb_mode: str = 'bn',
                acb_gamma_init: float = 1 / 3,
                acb_norm_cfg: OptConfigType = None,
                exclude: Sequence[str] = (),
                acb_norm_eval: bool = False,
                deploy: bool = False,
                init_cfg: OptMultiConfig = _INHERIT) -> 'ACNet':
        if cls is not ACNet:  # an empty instance (DataParallel replicas)
            return nn.Module.__new__(cls)
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise ValueError('ACNet needs backbone=dict(type=...), got '
                             f'{backbone!r}')
        backbone = copy.deepcopy(dict(backbone))
        if str(backbone['type']).split('.')[-1] == 'ACNet':
            raise ValueError('ACNet cannot wrap an ACNet')
        if init_cfg is not _INHERIT:
            backbone['init_cfg'] = init_cfg
        norm_cfg = _branch_norm_cfg(acb_norm_cfg, backbone)
        module = MODELS.build(backbone)
        if not isinstance(module, nn.Module):
            raise ValueError(f'backbone type {backbone["type"]!r} built a '
                             f'{type(module).__name__}, not an nn.Module')
        return add_acb(module, acb_mode=acb_mode,
                       acb_gamma_init=acb_gamma_init, acb_norm_cfg=norm_cfg,
                       exclude=exclude, acb_norm_eval=acb_norm_eval,
                       deploy=deploy, inplace=True)

    def __init__(self, *args, **kwargs) -> None:
        """Nothing to do: :meth:`__new__` returned a built backbone."""

    def __reduce_ex__(self, protocol):
        # deepcopy / pickle rebuild the instance through its stock class
        return _restore, (type(self).stock_class, ), self.__getstate__()

    # ------------------------------------------------------------ state
    def acb_modules(self) -> List[Tuple[str, ACConv2d]]:
        """``(name, module)`` of every ACB conv."""
        return [(n, m) for n, m in self.named_modules()
                if isinstance(m, ACConv2d)]

    def train(self, mode: bool = True) -> 'ACNet':
        """The stock ``train`` (frozen stages, ``norm_eval``), then the
        branches: those of frozen convs (``requires_grad=False``) stay
        frozen (no gradient, eval mode), the others follow ``mode`` even
        under ``norm_eval`` unless ``acb_norm_eval``. Returns ``self``."""
        super().train(mode)
        for _, conv in self.acb_modules():
            if not conv.weight.requires_grad:
                # mmdet freezes e.g. ResNet's stem conv by requires_grad
                # only, so the conv's own mode does not tell
                conv.acb.requires_grad_(False)
                conv.acb.eval()
            elif mode and not self.acb_norm_eval:
                conv.acb.train(True)
        return self

    def init_weights(self) -> None:
        """The stock ``init_weights`` (``init_cfg``, ``Pretrained``), then
        ``acb_gamma_init`` again for the branches whose gamma no checkpoint
        supplied (mmengine's default init sets every BN weight to 1).

        Raises:
            PretrainedMismatchError: the checkpoint does not fit (nothing is
                loaded then).
        """
        if getattr(self, 'is_init', False):
            return
        if not callable(getattr(super(), 'init_weights', None)):
            return self._reset_gammas(set())  # add_acb on a plain nn.Module
        loaded = set()

        def seen(module, state_dict, prefix, *args) -> None:
            if any(prefix + k in state_dict for k in module.gamma_params()):
                loaded.add(id(module))

        handles = [register_load_state_dict_pre_hook(self, self._check_fits)]
        handles += [register_load_state_dict_pre_hook(m, seen)
                    for m in self.modules() if isinstance(m, ACBranches)]
        try:
            super().init_weights()
        finally:
            for handle in handles:
                handle.remove()
        self._reset_gammas(loaded)

    def _reset_gammas(self, keep: set) -> None:
        for m in self.modules():
            if isinstance(m, ACBranches) and id(m) not in keep:
                m.reset_gamma()

    @staticmethod
    def _check_fits(module: nn.Module, state_dict: Dict[str, Tensor],
                    prefix: str, *args) -> None:
        """Refuse a checkpoint that does not fit, before anything loads: a
        shape mismatch, a stock tensor missing, or some but not all branch
        tensors (a plain checkpoint has none, an ACB one all)."""
        own = {prefix + k: v for k, v in module.state_dict().items()
               if not k.endswith('num_batches_tracked')}
        fit = state_fit(own, state_dict)  # other modules' keys: unexpected
        shape, missing = fit['mismatched'], fit['missing']
        if all(k in missing for k in own if '.acb.' in k):
            missing = [k for k in missing if '.acb.' not in k]
        if shape:
            first = (f'{shape[0]} is {tuple(state_dict[shape[0]].shape)} in '
                     f'the checkpoint, {tuple(own[shape[0]].shape)} in the '
                     'backbone')
        elif missing:
            first = f'{missing[0]} is not in the checkpoint'
        else:
            return
        raise PretrainedMismatchError(
            f'the checkpoint does not fit this {type(module).__name__} '
            f'({len(shape)} shape mismatches, {len(missing)} missing): '
            f'{first}; nothing loaded')

    # ----------------------------------------------------------- deploy
    def switch_to_deploy(self) -> None:
        """Fold every ACB into its conv, in place (eval semantics).

        Idempotent. Afterwards the backbone holds no ACB and its state_dict
        loads strictly into ``stock_class`` built from the same config.

        Raises:
            TypeError: a branch norm cannot be folded (not a batch norm with
                running statistics); nothing has been changed then.
        """
        if self.deploy:
            return
        fuse_acb_sites(self, self.acb_sites)
        self.deploy = True


def add_acb(module: nn.Module,
            acb_mode: str = 'bn',
            acb_gamma_init: float = 1 / 3,
            acb_norm_cfg: OptConfigType = None,
            exclude: Sequence[str] = (),
            acb_norm_eval: bool = False,
            deploy: bool = False,
            inplace: bool = False) -> ACNet:
    """Put ACBs into a built module: what :class:`ACNet` does after
    building its backbone.

    Args:
        module (nn.Module): any network (a backbone, usually).
        acb_mode, acb_gamma_init, exclude, acb_norm_eval, deploy: see
            :class:`ACNet`.
        acb_norm_cfg (dict, optional): the branch norms. Defaults to BN
            (always trainable).
        inplace (bool): convert ``module`` itself instead of a deep copy.
            Defaults to False.

    Returns:
        ACNet: the converted module, of class ``ACNet<type(module)>``.

    Raises:
        ValueError: see :class:`ACNet`; ``module`` is unchanged then.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f'expected an nn.Module, got {type(module).__name__}')
    if isinstance(module, ACNet) or count_acb(module):
        raise ValueError(f'{type(module).__name__} already holds ACBs')
    if acb_mode not in ACB_MODES:
        raise ValueError(f'acb_mode must be one of {ACB_MODES}, got '
                         f'{acb_mode!r}')
    sites: List[ACBSite] = []
    if not deploy:
        sites, kept = find_acb_sites(module, acb_mode, exclude)
        if not sites:
            why = '; '.join(f'{n}: {r}' for n, r in list(kept.items())[:2])
            raise ValueError(
                f'{type(module).__name__} has no conv that can get an ACB' +
                (f' ({len(kept)} kept, e.g. {why})' if kept else
                 ' (no conv with a kernel larger than 1)'))
    if not inplace:
        module = copy.deepcopy(module)
    if sites:
        convert_convs(module, sites, acb_mode=acb_mode,
                      gamma_init=acb_gamma_init,
                      norm_cfg=branch_norm_cfg(acb_norm_cfg))
    module.__class__ = acnet_class(type(module))
    module.acb_mode = acb_mode
    module.acb_gamma_init = float(acb_gamma_init)
    module.acb_norm_eval = bool(acb_norm_eval)
    module.acb_sites = sites
    module.deploy = bool(deploy)
    module.train(module.training)
    if sites:
        MMLogger.get_current_instance().debug(
            f'{type(module).__name__}: {len(sites)} convs got an ACB '
            f'({acb_mode!r} mode), {len(kept)} with a kernel larger than 1 '
            'kept')
    return module


def stock_backbone_config(cfg: dict) -> dict:
    """The stock backbone config of an ``ACNet`` config (the wrapped
    ``backbone``, ``init_cfg`` cleared: weights come from a fused
    checkpoint); any other config is returned unchanged."""
    if cfg.get('type') not in WRAPPER_TYPES:
        return cfg
    stock = copy.deepcopy(cfg['backbone'])
    stock['init_cfg'] = None
    return stock

