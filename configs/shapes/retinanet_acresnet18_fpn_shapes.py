# The same detector and schedule with ACResNet-18 ('bn' mode, ACNet).
_base_ = './retinanet_fcnresnet18_fpn_shapes.py'
model = dict(
    backbone=dict(type='ACResNet', acb_mode='bn', acb_gamma_init=1.0))
