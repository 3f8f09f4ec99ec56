# mmseg's dilated FCN (d8: the last two stages dilated 2 and 4 instead of
# strided, output stride 8; FCNHead with an auxiliary FCNHead on stage 3),
# from mmseg's own fcn_r50-d8 model, with the plain half-width ResNet-18
# (FCNResNet) on the embedded segmentation set. mmseg's d8 models use
# ResNetV1c (deep stem, contract_dilation); this is mmdet's ResNet (the
# torchvision layout), what FCNResNet and ACResNet are. The baseline of
# fcn-d8_acresnet18_shapes.py.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py', 'mmseg::_base_/default_runtime.py',
    './_base_/shapes-seg.py', './_base_/schedule_shapes-seg.py'
]
custom_imports = dict(
    imports=['acnet_backbone', 'acnet_backbone.seg'],
    allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size_divisor=32)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmdet.FCNResNet',
        depth=18,
        base_channels=32,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=None),
    decode_head=dict(
        in_channels=256, channels=128, num_classes=5, norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=128, channels=64, num_classes=5, norm_cfg=norm_cfg))
