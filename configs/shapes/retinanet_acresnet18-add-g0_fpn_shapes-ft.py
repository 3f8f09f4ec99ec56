# The practical starting point: the plain ResNet-18 that mmpretrain pretrained
# (configs/pretrain/fcnresnet18_shapes-cls.py), fine-tuned as an ACResNet-18
# whose asymmetric branches are added at fine-tuning ('bn' mode). With
# acb_gamma_init=0 the branch BNs start at gamma 0, so at step 0 the detector
# computes exactly the plain pretrained network; the checkpoint fills every
# plain tensor and the ACB branch tensors keep their init. Same recipe as
# retinanet_fcnresnet18_fpn_shapes-ft.py: norm_eval=True freezes the
# pretrained norms, the new branch BNs keep training (acb_norm_eval=False),
# stem and first stage stay frozen (their branches stay at gamma 0).
# The COCO equivalent is configs/acnet/retinanet_acresnet50_fpn_1x_coco.py
# (torchvision://resnet50). `make study-start` compares the starting points.
_base_ = './retinanet_acresnet18_fpn_shapes-ft.py'
# the plain pretraining of `make journey`'s seed-0 pipeline; the study gives
# each seed its own (model.backbone.init_cfg.checkpoint)
pretrained = ('work_dirs/journey/pretrain/fcnresnet18_shapes-cls/seed_0/'
              'iter_1500.pth')
model = dict(
    backbone=dict(
        acb_mode='bn',
        acb_gamma_init=0.0,
        init_cfg=dict(checkpoint=pretrained)))
