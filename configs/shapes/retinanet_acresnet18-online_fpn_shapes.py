# ACResNet-18 with online ACB (branch kernels merged every forward).
_base_ = './retinanet_fcnresnet18_fpn_shapes.py'
model = dict(
    backbone=dict(type='ACResNet', acb_mode='online', acb_gamma_init=1.0))
