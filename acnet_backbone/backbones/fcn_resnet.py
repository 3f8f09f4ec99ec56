from mmdet.registry import MODELS

from .base import ResNetWithTop


@MODELS.register_module()
class FCNResNet(ResNetWithTop):
    """A plain (torchvision-equivalent) ResNet whose optional top is fully
    convolutional.

    With ``include_top=False`` (default) it is mmdet's stock ``ResNet``: same
    state_dict keys, same outputs, so it feeds FPN like any mmdet backbone and
    serves as the baseline of every ACResNet comparison. With
    ``include_top=True`` the classifier is a 1x1 conv (a torchvision
    ``fc.weight [K, C]`` is reshaped into it when loading), so any input size
    gives class scores; with ``top_pool=None, upsample=True`` it is the
    classic FCN-32s head (Long et al., CVPR 2015): 1x1 conv to the classes and
    a stride-32 transposed conv initialised as bilinear interpolation.

    Inputs whose size is not a multiple of 32 get a map cropped at the
    bottom/right to the input's size: the crop keeps each pixel at the
    feature position bilinear interpolation would give it (no shift).

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        include_top, num_classes, top_pool, upsample: see
            :class:`~acnet_backbone.backbones.base.ResNetWithTop`.
        **kwargs: every keyword of mmdet's ``ResNet``.

    Example:
        >>> import torch
        >>> from acnet_backbone import FCNResNet
        >>> net = FCNResNet(18, include_top=True, num_classes=10).eval()
        >>> tuple(net(torch.rand(1, 3, 320, 480)).shape)
        (1, 10, 1, 1)
        >>> net = FCNResNet(18, include_top=True, num_classes=10,
        ...                 top_pool=7).eval()
        >>> tuple(net(torch.rand(1, 3, 320, 480)).shape)
        (1, 10, 4, 9)
    """
