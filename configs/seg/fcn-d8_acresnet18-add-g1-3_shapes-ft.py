# The practical starting point for the dilated FCN with the branch BNs at
# gamma 1/3 (the start the detection study found best: at gamma 0 the branch
# kernels get no gradient until gamma moves): the plain pretrained ResNet-18
# fine-tuned as an ACResNet-18 whose asymmetric branches are added at
# fine-tuning. See fcn-d8_acresnet18-add-g0_shapes-ft.py and
# configs/shapes/retinanet_acresnet18-add-g1-3_fpn_shapes-ft.py.
_base_ = './fcn-d8_acresnet18-add-g0_shapes-ft.py'
model = dict(backbone=dict(acb_gamma_init=1 / 3))
