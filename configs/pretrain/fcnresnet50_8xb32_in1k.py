# ImageNet-1k classification with mmpretrain: the plain ResNet-50 (FCNResNet,
# identical to mmdet's ResNet) under ACNet's recipe (SGD lr 0.1, momentum 0.9,
# weight decay 1e-4, cosine, 100 epochs, batch 256 = 8 GPUs x 32), the
# baseline of the ACResNet-50 configs beside it. Runs with mmpretrain's own
# tools/train.py or ours (tools/pretrain.py); multi-GPU:
#   bash tools/dist_pretrain.sh configs/pretrain/fcnresnet50_8xb32_in1k.py 8
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256_coslr.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['acnet_backbone'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    # 'mmdet.' : the backbones live in mmdet's registry (cross-scope build)
    backbone=dict(
        type='mmdet.FCNResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
