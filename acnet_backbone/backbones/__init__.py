from .acnet_wrapper import ACNet, acnet_class, add_acb
from .acresnet import ACResNet
from .base import PretrainedMismatchError, ResNetWithTop, bilinear_kernel
from .fcn_resnet import FCNResNet

__all__ = [
    'ACNet', 'ACResNet', 'FCNResNet', 'PretrainedMismatchError',
    'ResNetWithTop', 'acnet_class', 'add_acb', 'bilinear_kernel'
]
