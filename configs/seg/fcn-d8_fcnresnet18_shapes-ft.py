# The dilated FCN (d8) of fcn-d8_fcnresnet18_shapes.py fine-tuned from the
# plain ResNet-18 that mmpretrain pretrained on the classification form of the
# data (configs/pretrain/fcnresnet18_shapes-cls.py), mmseg's recipe: the whole
# backbone trains, its BNs included (norm_eval=False, frozen_stages=-1), as
# mmseg's d8 models fine-tune from ImageNet weights. Dilation changes no weight
# shape, so the classifier's backbone loads as it is. Same 1000-iteration
# schedule as from scratch. `tools/journey.py --finetune ...` (make
# journey-seg) gives each seed its own pretrained checkpoint.
_base_ = './fcn-d8_fcnresnet18_shapes.py'
# the checkpoint of `make journey`'s seed-0 pipeline; the journey gives each
# seed its own (model.backbone.init_cfg.checkpoint)
pretrained = ('work_dirs/journey/pretrain/fcnresnet18_shapes-cls/seed_0/'
              'iter_1500.pth')
model = dict(
    backbone=dict(
        # the from-scratch base has init_cfg=None: replace it
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')))
