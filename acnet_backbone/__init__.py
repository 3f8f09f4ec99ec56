"""ACNet (Asymmetric Convolution Block) backbones for MMDetection 3.x.

Importing the package registers ``ACNet``, ``ACResNet`` and ``FCNResNet`` in
``mmdet.registry.MODELS`` and allow-lists the types mmengine writes into
checkpoints, so that they load with ``torch.load(weights_only=True)``.
"""
from .safe_load import register_safe_globals

register_safe_globals()

from .backbones import ACNet, ACResNet, FCNResNet, add_acb  # noqa: E402
from .deploy.fuse import fuse_model  # noqa: E402
from .layers import ACBlock, ACBranches, ACConv2d  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = [
    'ACBlock', 'ACBranches', 'ACConv2d', 'ACNet', 'ACResNet', 'FCNResNet',
    'add_acb', 'fuse_model', '__version__'
]
