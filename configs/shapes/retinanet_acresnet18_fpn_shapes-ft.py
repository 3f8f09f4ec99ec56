# The same fine-tuning from the ACResNet-18 ('bn' mode) that mmpretrain
# pretrained (configs/pretrain/acresnet18_shapes-cls.py): every ACB tensor
# comes from the checkpoint (acb_gamma_init does not overwrite them), and under
# norm_eval=True the branch BNs of the trainable stages keep training
# (acb_norm_eval=False, the default).
_base_ = './retinanet_fcnresnet18_fpn_shapes-ft.py'
pretrained = 'work_dirs/journey/pretrain_acresnet18_shapes-cls/iter_1500.pth'
model = dict(
    backbone=dict(
        type='ACResNet',
        acb_mode='bn',
        acb_gamma_init=1.0,
        init_cfg=dict(checkpoint=pretrained)))
