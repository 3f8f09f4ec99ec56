# The route the docs recommend: the plain pretrained ResNet-18 fine-tuned as
# an ACResNet-18 ('bn'), the asymmetric branches added at fine-tuning with
# their BN gamma starting at 1/3. The branch BNs keep training under
# norm_eval (they have no pretrained statistics), except in the frozen stem
# and stage 1.
_base_ = './retinanet_fcnresnet18_fpn_trees-ft.py'
model = dict(
    backbone=dict(type='ACResNet', acb_mode='bn', acb_gamma_init=1 / 3))
