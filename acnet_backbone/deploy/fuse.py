import copy

from torch import nn

from ..layers import ACBlock, ACConv2d


def has_acb(model: nn.Module) -> bool:
    """Whether ``model`` holds any asymmetric branch still to fuse."""
    return any(isinstance(m, ACConv2d) or (isinstance(m, ACBlock)
                                           and not m.deploy)
               for m in model.modules())


def fuse_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every ACB of ``model`` (a backbone, a detector, ...) into plain
    convs, in eval semantics.

    Calls ``switch_to_deploy()`` on every module that has it (ACResNet
    backbones and standalone ACBlocks), outermost first.

    Args:
        model (nn.Module): the model.
        inplace (bool): change ``model`` itself instead of a deep copy.
            Defaults to False.

    Returns:
        nn.Module: the fused model (``model`` itself when ``inplace``).

    Raises:
        RuntimeError: an ACB conv is left that no owner could fuse.
    """
    if not inplace:
        model = copy.deepcopy(model)
    for module in list(model.modules()):
        if callable(getattr(module, 'switch_to_deploy', None)):
            module.switch_to_deploy()
    left = [name for name, m in model.named_modules()
            if isinstance(m, ACConv2d)]
    if left:
        raise RuntimeError(f'ACB convs outside an ACResNet cannot be fused '
                           f'without knowing their following norm: {left[0]}')
    return model
