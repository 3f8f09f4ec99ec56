"""ACNet (Asymmetric Convolution Block) backbones for MMDetection 3.x.

Importing the package checks the installed stack against the tested one
(:mod:`acnet_backbone.compat`: one line, an error where it cannot work, a
warning where it is untested), registers ``ACNet``, ``ACResNet`` and
``FCNResNet`` in ``mmdet.registry.MODELS`` and makes mmengine checkpoints load
without running pickled code (:mod:`acnet_backbone.safe_load`: the allow-list
in ``torch.load(weights_only=True)`` on torch >= 2.4, a restricted unpickler
behind mmengine's checkpoint loaders on older torch).
"""
from .compat import check_installed_stack

check_installed_stack()

from .safe_load import register_safe_globals  # noqa: E402

register_safe_globals()

from .backbones import ACNet, ACResNet, FCNResNet, add_acb  # noqa: E402
from .deploy.fuse import fuse_model  # noqa: E402
from .layers import ACBlock, ACBranches, ACConv2d  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = [
    'ACBlock', 'ACBranches', 'ACConv2d', 'ACNet', 'ACResNet', 'FCNResNet',
    'add_acb', 'fuse_model', '__version__'
]
