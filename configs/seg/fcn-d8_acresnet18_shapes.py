# The same dilated FCN (d8) and schedule with ACResNet-18 ('bn' mode): the
# asymmetric branches of the dilated 3x3 convs are dilated alike and fuse
# exactly (acnet_backbone.seg.deploy).
_base_ = './fcn-d8_fcnresnet18_shapes.py'
model = dict(
    backbone=dict(type='mmdet.ACResNet', acb_mode='bn', acb_gamma_init=1.0))
