# The practical starting point with the branch scale the official ACNet
# README advises where ACB does not help at first (1/3): the plain pretrained
# ResNet-18 fine-tuned as an ACResNet-18 whose branch BNs start at gamma 1/3.
# Unlike gamma 0, the detector no longer starts as the pretrained network.
# See retinanet_acresnet18-add-g0_fpn_shapes-ft.py.
_base_ = './retinanet_acresnet18-add-g0_fpn_shapes-ft.py'
model = dict(backbone=dict(acb_gamma_init=1 / 3))
