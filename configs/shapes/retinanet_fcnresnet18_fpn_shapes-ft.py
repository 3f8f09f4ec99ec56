# Fine-tuning the shapes RetinaNet from the plain ResNet-18 that mmpretrain
# pretrained on the classification form of the data
# (configs/pretrain/fcnresnet18_shapes-cls.py; `make journey` runs both), with
# mmdet's fine-tuning recipe: pretrained norms frozen (norm_eval=True), stem
# and first stage frozen (frozen_stages=1). Shorter than training from
# scratch: the backbone starts trained.
_base_ = './retinanet_fcnresnet18_fpn_shapes.py'
# the checkpoint of `make journey`'s seed-0 pipeline; the journey gives each
# seed its own (model.backbone.init_cfg.checkpoint)
pretrained = ('work_dirs/journey/pretrain/fcnresnet18_shapes-cls/seed_0/'
              'iter_1500.pth')
max_iters = 400

model = dict(
    backbone=dict(
        norm_eval=True,
        frozen_stages=1,
        # the from-scratch base has init_cfg=None: replace it
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters,
         T_max=max_iters - 50, eta_min=1e-5)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
