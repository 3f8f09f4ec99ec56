# The same pretraining with ACResNet-18 in ACNet's form ('bn' mode, branch
# gamma 1 as in ACNet's ImageNet runs); initialises
# configs/shapes/retinanet_acresnet18_fpn_shapes-ft.py with every ACB tensor.
_base_ = './fcnresnet18_shapes-cls.py'
model = dict(
    backbone=dict(type='mmdet.ACResNet', acb_mode='bn', acb_gamma_init=1.0))
