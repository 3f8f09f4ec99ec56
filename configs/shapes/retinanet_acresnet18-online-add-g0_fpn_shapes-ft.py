# The practical starting point with online ACB: the plain pretrained
# ResNet-18 fine-tuned as an ACResNet-18 whose branches (a learnable
# per-channel scale each, merged into one kernel every forward) are added at
# fine-tuning with scale 0, so the detector starts as the plain pretrained
# network. See retinanet_acresnet18-add-g0_fpn_shapes-ft.py.
_base_ = './retinanet_acresnet18-add-g0_fpn_shapes-ft.py'
model = dict(backbone=dict(acb_mode='online'))
