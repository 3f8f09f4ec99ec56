from .acresnet import ACResNet
from .base import PretrainedMismatchError, ResNetWithTop, bilinear_kernel
from .fcn_resnet import FCNResNet

__all__ = [
    'ACResNet', 'FCNResNet', 'PretrainedMismatchError', 'ResNetWithTop',
    'bilinear_kernel'
]
