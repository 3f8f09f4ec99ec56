# ACResNet-50 (ACNet 'bn' mode) in the faster-rcnn baseline beside this file; the
# plain FCNResNet-50 config is the baseline for comparisons. With
# acb_gamma_init=1/3 the branches (new, random) join the torchvision weights at
# a third of the branch BN's unit scale: on the embedded data this beat
# gamma 0 in 5 of 5 pipelines (+0.017 bbox mAP [+0.014, +0.020]) and plain
# fine-tuning by +0.022 [+0.007, +0.037] (docs/results/detection.md, "Which
# starting point"); untested at COCO scale. With gamma 0 the detector would
# start as exactly the plain one, but the branch kernels get no gradient
# until gamma moves away from 0, and they stayed at 2-7% of the square
# kernels' weight.
_base_ = './faster-rcnn_fcnresnet50_fpn_1x_coco.py'
model = dict(
    backbone=dict(type='ACResNet', acb_mode='bn', acb_gamma_init=1 / 3))
