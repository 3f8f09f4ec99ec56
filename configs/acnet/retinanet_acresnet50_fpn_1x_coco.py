# ACResNet-50 (ACNet 'bn' mode) in the retinanet baseline beside this file; the
# plain FCNResNet-50 config is the baseline for comparisons. With
# acb_gamma_init=0 the detector starts as exactly the torchvision-initialised
# one: the asymmetric branches grow from zero during training.
_base_ = './retinanet_fcnresnet50_fpn_1x_coco.py'
model = dict(
    backbone=dict(type='ACResNet', acb_mode='bn', acb_gamma_init=0.0))
