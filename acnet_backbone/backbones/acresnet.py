from typing import Iterator, List, Optional, Sequence, Tuple

from mmdet.models.backbones.resnet import BasicBlock, Bottleneck
from mmdet.registry import MODELS
from torch import nn

from ..convert import ACBSite, fuse_acb_sites
from ..layers import ACB_MODES, ACBranches, ACConv2d
from .base import ResNetWithTop


def acb_sites(block: nn.Module) -> List[Tuple[str, str]]:
    """``(conv, following norm)`` attribute names of a residual block's 3x3
    convs."""
    if isinstance(block, Bottleneck):
        return [('conv2', 'norm2')]
    if isinstance(block, BasicBlock):
        return [('conv1', 'norm1'), ('conv2', 'norm2')]
    return []


@MODELS.register_module()
class ACResNet(ResNetWithTop):
    """ResNet whose residual-block 3x3 convs carry Asymmetric Convolution
    Blocks.

    From "ACNet: Strengthening the Kernel Skeletons for Powerful CNN via
    Asymmetric Convolution Blocks" (Ding et al., ICCV 2019; reference code
    DingXiaoH/ACNet), built on mmdet's ``ResNet``. Every plain 3x3
    ``nn.Conv2d`` of the residual blocks (Bottleneck ``conv2``, BasicBlock
    ``conv1`` and ``conv2``) becomes an :class:`ACConv2d`: the square conv
    keeps its weight and key, and a ``1x3`` conv + BN and a ``3x1`` conv + BN
    are added to its output before the block's own norm. Stem and 1x1 convs
    are untouched, so plain ResNet checkpoints (mmdet, ``torchvision://``)
    load unchanged. Convs that cannot be fused exactly keep their type and get
    no ACB: deformable convs (``dcn``) and weight-transforming ``conv_cfg``
    such as ``ConvWS``.

    :meth:`switch_to_deploy` folds every branch into its square kernel and the
    branch BN biases into the following norm's running mean: the result holds
    no ACB module and its ``state_dict`` loads strictly into mmdet's
    ``ResNet`` with the same arguments.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        acb_mode (str): ``'bn'`` (ACNet, a BN per branch) or ``'online'`` (a
            learnable per-channel scale per branch, the kernels merged into
            one conv every forward). Defaults to 'bn'.
        acb_gamma_init (float): initial gamma (scale) of the asymmetric
            branches. Survives ``init_weights`` and a plain ``Pretrained``
            checkpoint (branch tensors a checkpoint holds are loaded). The
            default 1/3 is the start that fine-tuned best from plain
            pretrained weights (docs/results/detection.md, "Which starting
            point"); with 0 the network computes exactly the plain ResNet's
            function at step 0, but the branch kernels get no gradient until
            gamma moves; 1.0 is ACNet's from-scratch start. Defaults to 1/3.
        stage_with_acb (Sequence[bool], optional): which stages get ACBs,
            one bool per stage, as mmdet's ``stage_with_dcn``; the 3x3 convs
            of the other stages stay plain ``nn.Conv2d``. E.g.
            ``(False, True, True, True)`` with ``frozen_stages=1`` leaves no
            branch in the frozen stage, where branches added onto plain
            weights would never train. Defaults to every stage.
        deploy (bool): build the fused (stock ResNet) structure. Defaults to
            False.
        acb_norm_eval (bool): under ``norm_eval=True`` (mmdet's fine-tuning
            recipe, which freezes the pretrained norms' statistics), also
            freeze the asymmetric branches' norms. They are new and have no
            pretrained statistics, so by default (False) they keep training
            and follow the module's train/eval mode, which is ACNet; only in
            frozen stages (``frozen_stages``) do they stay frozen (eval, no
            gradient) with the rest of the stage. True restores mmdet's
            blanket behaviour (every ``_BatchNorm`` in eval mode: the branch
            BNs then keep their init statistics, mean 0 and variance 1).
            Without ``norm_eval`` this has no effect. Defaults to False.
        norm_cfg (dict): as in mmdet's ``ResNet``; the branch norms take its
            type (BN, SyncBN) but are always trainable: a
            ``requires_grad=False`` (mmdet's caffe-style configs freeze the
            pretrained norms so) applies to the pretrained norms only, since
            frozen branch norms with ``acb_gamma_init=0`` would output zero
            for the whole of training.
        include_top, num_classes, top_pool, upsample: see
            :class:`~acnet_backbone.backbones.base.ResNetWithTop`.
        **kwargs: every keyword of mmdet's ``ResNet``.

    Example:
        >>> import torch
        >>> from acnet_backbone import ACResNet
        >>> net = ACResNet(18, acb_gamma_init=0.5).eval()
        >>> x = torch.rand(1, 3, 64, 64)
        >>> [tuple(o.shape) for o in net(x)]
        [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
        >>> before = net(x)
        >>> net.switch_to_deploy()
        >>> all(torch.allclose(a, b, atol=1e-4)
        ...     for a, b in zip(before, net(x)))
        True
    """

    def __init__(self,
                 depth: int,
                 acb_mode: str = 'bn',
                 acb_gamma_init: float = 1 / 3,
                 deploy: bool = False,
                 acb_norm_eval: bool = False,
                 stage_with_acb: Optional[Sequence[bool]] = None,
                 **kwargs) -> None:
        if acb_mode not in ACB_MODES:
            raise ValueError(f'acb_mode must be one of {ACB_MODES}, got '
                             f'{acb_mode!r}')
        num_stages = kwargs.get('num_stages', 4)
        if stage_with_acb is None:
            stage_with_acb = (True, ) * num_stages
        if len(stage_with_acb) != num_stages:
            raise ValueError(f'stage_with_acb has {len(stage_with_acb)} '
                             f'entries; num_stages is {num_stages}')
        # read by make_res_layer, which ResNet.__init__ calls once per stage
        self.acb_mode = acb_mode
        self.acb_gamma_init = float(acb_gamma_init)
        self.deploy = deploy
        self.acb_norm_eval = bool(acb_norm_eval)
        self.stage_with_acb = tuple(bool(s) for s in stage_with_acb)
        super().__init__(depth, **kwargs)

    def make_res_layer(self, **kwargs) -> nn.Module:
        layer = super().make_res_layer(**kwargs)
        # ResNet.__init__ appends each stage's name after building it
        stage = len(self.res_layers)
        if self.deploy or not self.stage_with_acb[stage]:
            return layer
        for block in layer:
            for conv_name, _ in acb_sites(block):
                conv = getattr(block, conv_name)
                # exact type: DCN and ConvWS-like convs cannot fuse exactly
                if type(conv) is nn.Conv2d and conv.kernel_size == (3, 3):
                    setattr(block, conv_name, ACConv2d.from_conv(
                        conv, acb_mode=self.acb_mode,
                        norm_cfg=kwargs.get('norm_cfg'),
                        gamma_init=self.acb_gamma_init))
        return layer

    def acb_modules(self) -> Iterator[Tuple[str, ACConv2d]]:
        """``(name, module)`` of every ACB conv."""
        for name, module in self.named_modules():
            if isinstance(module, ACConv2d):
                yield name, module

    def train(self, mode: bool = True) -> 'ACResNet':
        """mmdet's ``ResNet.train`` (frozen stages, ``norm_eval``); then,
        unless ``acb_norm_eval``, the asymmetric branches of the trainable
        stages follow ``mode`` even under ``norm_eval``."""
        super().train(mode)
        if mode and self.norm_eval and not self.acb_norm_eval:
            for i, layer_name in enumerate(self.res_layers, start=1):
                if i <= self.frozen_stages:
                    continue
                for module in getattr(self, layer_name).modules():
                    if isinstance(module, ACBranches):
                        module.train(True)
        return self

    def _after_default_init(self) -> None:
        super()._after_default_init()
        for module in self.modules():
            if isinstance(module, ACBranches):
                module.reset_gamma()

    def _expected_missing(self, key: str) -> bool:
        return '.acb.' in key

    def switch_to_deploy(self) -> None:
        """Fold every ACB into its square conv, in place (eval semantics).

        Idempotent. Afterwards the backbone is mmdet's stock ``ResNet``
        structure with fused weights.

        Raises:
            TypeError: a norm after an ACB cannot absorb the branches' bias
                (nothing has been changed then).
        """
        if self.deploy:
            return
        sites = [ACBSite(f'{layer}.{i}.{conv}', f'{layer}.{i}.{norm}')
                 for layer in self.res_layers
                 for i, block in enumerate(getattr(self, layer))
                 for conv, norm in acb_sites(block)]
        fuse_acb_sites(self, sites)
        self.deploy = True
