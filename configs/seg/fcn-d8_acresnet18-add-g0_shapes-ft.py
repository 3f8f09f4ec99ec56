# The practical starting point for the dilated FCN: the plain ResNet-18 that
# mmpretrain pretrained, fine-tuned as an ACResNet-18 whose asymmetric
# branches are added at fine-tuning ('bn' mode, branch BN gamma 0: the
# segmentor starts as the plain pretrained network), mmseg's recipe (the
# whole backbone trains, its BNs included). See
# configs/shapes/retinanet_acresnet18-add-g0_fpn_shapes-ft.py.
_base_ = './fcn-d8_acresnet18_shapes-ft.py'
# the plain pretraining of `make journey`'s seed-0 pipeline; the study gives
# each seed its own (model.backbone.init_cfg.checkpoint)
pretrained = ('work_dirs/journey/pretrain/fcnresnet18_shapes-cls/seed_0/'
              'iter_1500.pth')
model = dict(
    backbone=dict(
        acb_mode='bn',
        acb_gamma_init=0.0,
        init_cfg=dict(checkpoint=pretrained)))
