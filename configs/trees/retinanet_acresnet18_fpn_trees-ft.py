# The paper's route: the ACResNet-18 ('bn') pretrained by mmpretrain
# (configs/pretrain/acresnet18_shapes-cls.py) fine-tuned as an ACResNet-18;
# start `acb` in tools/journey.py --route.
_base_ = './retinanet_fcnresnet18_fpn_trees-ft.py'
pretrained = ('work_dirs/journey/pretrain/acresnet18_shapes-cls/seed_0/'
              'iter_1500.pth')
model = dict(
    backbone=dict(type='ACResNet', acb_mode='bn',
                  init_cfg=dict(checkpoint=pretrained)))
