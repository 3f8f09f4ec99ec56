# The same detector and schedule with ACResNet-18 ('bn' mode, ACNet), from
# scratch: branch gamma 1, as in the embedded-data from-scratch configs.
_base_ = './retinanet_fcnresnet18_fpn_trees.py'
model = dict(
    backbone=dict(type='ACResNet', acb_mode='bn', acb_gamma_init=1.0))
