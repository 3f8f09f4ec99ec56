# RTMDet-tiny (plain CSPNeXt) on the embedded shapes dataset
# (tools/make_shapes_dataset.py): the baseline of the ACB CSPNeXt config
# beside it. Dataset, 128x128 inputs, schedule (1500 iterations, AdamW,
# cosine) and hooks come from the RetinaNet shapes config, so the two detector
# families train on the same recipe; the model is mmdet's RTMDet-tiny
# (configs/rtmdet/rtmdet_tiny_8xb32-300e_coco.py: CSPNeXt deepen 0.167 / widen
# 0.375, CSPNeXtPAFPN, RTMDetSepBNHead) trained from scratch on the CPU: BN
# instead of SyncBN, no ImageNet checkpoint, and none of the COCO recipe's
# Mosaic/MixUp pipeline, EMA or pipeline switch.
_base_ = '../shapes/retinanet_fcnresnet18_fpn_shapes.py'

norm_cfg = dict(type='BN')
act_cfg = dict(type='SiLU', inplace=True)
# the stock backbone; the ACB config wraps this same dict
cspnext_tiny = dict(
    type='CSPNeXt',
    arch='P5',
    expand_ratio=0.5,
    deepen_factor=0.167,
    widen_factor=0.375,
    channel_attention=True,
    norm_cfg=norm_cfg,
    act_cfg=act_cfg,
    init_cfg=None)

model = dict(
    _delete_=True,
    type='RTMDet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=False,
        pad_size_divisor=32,
        batch_augments=None),
    backbone=cspnext_tiny,
    neck=dict(
        type='CSPNeXtPAFPN',
        in_channels=[96, 192, 384],
        out_channels=96,
        num_csp_blocks=1,
        expand_ratio=0.5,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg),
    bbox_head=dict(
        type='RTMDetSepBNHead',
        num_classes=4,
        in_channels=96,
        stacked_convs=2,
        feat_channels=96,
        anchor_generator=dict(
            type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(
            type='QualityFocalLoss', use_sigmoid=True, beta=2.0,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False,
        exp_on_reg=False,
        share_conv=True,
        pred_kernel_size=1,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg),
    train_cfg=dict(
        assigner=dict(type='DynamicSoftLabelAssigner', topk=13),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.65),
        max_per_img=50))

# RTMDet's optimiser settings: no weight decay on norms and biases
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True))
