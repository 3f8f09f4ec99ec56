_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['acnet_backbone'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='ACResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        acb_gamma_init=0.0,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')))
