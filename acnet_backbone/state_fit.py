"""The package's one check of how a checkpoint's tensors fit a model: used
by the strict deploy loading (:mod:`acnet_backbone.deploy.common`), the
backbones' ``Pretrained`` loading (:mod:`acnet_backbone.backbones.base`) and
the ``ACNet`` wrapper's (:mod:`acnet_backbone.backbones.acnet_wrapper`),
which differ only in what they forgive."""
from typing import Callable, Dict, List, Mapping, Optional

from torch import Tensor


def state_fit(own: Mapping[str, Tensor], state: Mapping[str, Tensor],
              skip: Optional[Callable[[str], bool]] = None
              ) -> Dict[str, List[str]]:
    """How ``state`` (a checkpoint's tensors) fits a model whose state_dict
    is ``own``.

    Args:
        own (Mapping[str, Tensor]): the model's tensors.
        state (Mapping[str, Tensor]): the checkpoint's tensors.
        skip (callable, optional): keys of ``own`` to leave out (e.g. BN's
            ``num_batches_tracked``). Defaults to None.

    Returns:
        dict: ``missing`` (keys of ``own`` not in ``state``), ``unexpected``
        (keys of ``state`` not in ``own``) and ``mismatched`` (keys in both
        whose shapes differ), each in the order of its source.

    Example:
        >>> state_fit({'w': torch.zeros(2)}, {'w': torch.zeros(3), 'b': 1})
        {'missing': [], 'unexpected': ['b'], 'mismatched': ['w']}
    """
    keys = [k for k in own if not (skip and skip(k))]
    return dict(
        missing=[k for k in keys if k not in state],
        unexpected=[k for k in state if k not in own],
        mismatched=[k for k in keys if k in state
                    and tuple(own[k].shape) != tuple(state[k].shape)])
