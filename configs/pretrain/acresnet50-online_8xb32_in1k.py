# ImageNet-1k pretraining of ACResNet-50 with online ACB (a learnable scale
# per branch, branch kernels merged into one conv every forward: the training
# cost of a plain ResNet-50), same recipe as the 'bn' config, scales start at 1.
_base_ = './fcnresnet50_8xb32_in1k.py'
model = dict(
    backbone=dict(
        type='mmdet.ACResNet', acb_mode='online', acb_gamma_init=1.0))
