# The same FCN-32s and schedule with ACResNet-18 ('bn' mode, ACNet): every
# 3x3 conv of the residual blocks gets a 1x3 + BN and a 3x1 + BN branch,
# fused into a stock mmdet ResNet for deployment (acnet_backbone.seg.deploy).
_base_ = './fcn32s_fcnresnet18_shapes.py'
model = dict(
    backbone=dict(type='mmdet.ACResNet', acb_mode='bn', acb_gamma_init=1.0))
