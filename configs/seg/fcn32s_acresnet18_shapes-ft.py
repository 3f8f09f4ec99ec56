# The same fine-tuning from the ACResNet-18 ('bn' mode) that mmpretrain
# pretrained (configs/pretrain/acresnet18_shapes-cls.py): every ACB tensor
# comes from the checkpoint (acb_gamma_init does not overwrite them).
_base_ = './fcn32s_fcnresnet18_shapes-ft.py'
# the checkpoint of `make journey`'s seed-0 pipeline; the journey gives each
# seed its own (model.backbone.init_cfg.checkpoint)
pretrained = ('work_dirs/journey/pretrain/acresnet18_shapes-cls/seed_0/'
              'iter_1500.pth')
model = dict(
    backbone=dict(
        type='mmdet.ACResNet',
        acb_mode='bn',
        acb_gamma_init=1.0,
        init_cfg=dict(checkpoint=pretrained)))
