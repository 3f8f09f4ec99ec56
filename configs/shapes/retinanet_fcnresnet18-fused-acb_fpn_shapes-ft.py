# The deploy-form start: the ACResNet-18 that mmpretrain pretrained
# (configs/pretrain/acresnet18_shapes-cls.py), its branches fused into the
# square kernels (a plain ResNet-18 computing the same function), fine-tuned
# as a plain ResNet-18 with retinanet_fcnresnet18_fpn_shapes-ft.py's recipe.
# Against the paper's route (ACB pretrained, ACB fine-tuned) it tells whether
# a gain lies in the pretrained representation or in training with the
# branches. The study (`make study-start`, start `acb-fused`) writes the fused
# backbone beside its pretraining (backbone_fused.pth).
_base_ = './retinanet_fcnresnet18_fpn_shapes-ft.py'
# the fused pretraining of `make journey`'s seed-0 pipeline; the study gives
# each seed its own (model.backbone.init_cfg.checkpoint)
pretrained = ('work_dirs/journey/pretrain/acresnet18_shapes-cls/seed_0/'
              'backbone_fused.pth')
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
