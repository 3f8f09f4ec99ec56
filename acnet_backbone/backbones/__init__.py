from .acresnet import ACResNet
from .base import ResNetWithTop, bilinear_kernel
from .fcn_resnet import FCNResNet

__all__ = ['ACResNet', 'FCNResNet', 'ResNetWithTop', 'bilinear_kernel']
