# The plain ResNet-18 pretrained by mmpretrain on the classification form of
# the embedded data (configs/pretrain/fcnresnet18_shapes-cls.py), fine-tuned
# on the tree crowns with mmdet's fine-tuning recipe: pretrained norms frozen
# (norm_eval=True), stem and first stage frozen (frozen_stages=1). The
# journey (tools/journey.py) gives each seed its own pretraining
# (model.backbone.init_cfg.checkpoint); the path below is seed 0's.
_base_ = './retinanet_fcnresnet18_fpn_trees.py'
pretrained = ('work_dirs/journey/pretrain/fcnresnet18_shapes-cls/seed_0/'
              'iter_1500.pth')
max_iters = 600

model = dict(
    backbone=dict(
        norm_eval=True,
        frozen_stages=1,
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
