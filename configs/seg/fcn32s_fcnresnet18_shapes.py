# FCN-32s (Long et al., CVPR 2015) in mmseg with the plain ResNet-18
# (FCNResNet) on the embedded segmentation set: backbone -> 1x1 conv to the
# 5 classes -> stride-32 transposed conv initialised as bilinear upsampling
# (acnet_backbone.seg's FCN32sHead), per-pixel cross-entropy. Sized like
# configs/shapes: half-width ResNet-18 (base_channels=32) from scratch on
# 128x128 images, trains on a 2-core CPU in minutes. The baseline of
# fcn32s_acresnet18_shapes.py.
_base_ = [
    'mmseg::_base_/default_runtime.py', './_base_/shapes-seg.py',
    './_base_/schedule_shapes-seg.py'
]
custom_imports = dict(
    imports=['acnet_backbone', 'acnet_backbone.seg'],
    allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=32)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdet.FCNResNet',
        depth=18,
        base_channels=32,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=None),
    decode_head=dict(
        type='FCN32sHead',
        in_channels=256,
        in_index=0,
        num_classes=5,
        dropout_ratio=0.1,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
