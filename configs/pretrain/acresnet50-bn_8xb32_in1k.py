# ImageNet-1k pretraining of ACResNet-50 in ACNet's own form ('bn' mode: a BN
# per asymmetric branch) with ACNet's recipe (inherited: SGD lr 0.1, momentum
# 0.9, wd 1e-4, cosine, 100 epochs, batch 256) and branch gamma 1 as in
# ACNet's ImageNet runs. The checkpoint initialises the ACResNet-50 detectors
# (configs/acnet/*_acresnet50-in1k_fpn_1x_coco.py) with every ACB tensor.
_base_ = './fcnresnet50_8xb32_in1k.py'
model = dict(
    backbone=dict(type='mmdet.ACResNet', acb_mode='bn', acb_gamma_init=1.0))
