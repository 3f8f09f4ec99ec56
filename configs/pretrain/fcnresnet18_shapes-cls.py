# Pretraining on the classification form of the embedded data
# (tools/make_shapes_dataset.py --task cls: one shape per 64x64 image, four
# classes) with mmpretrain: the plain half-width ResNet-18 of the shapes
# detectors. The first step of the embedded pretrain -> fine-tune journey
# (make journey); the checkpoint initialises
# configs/shapes/retinanet_fcnresnet18_fpn_shapes-ft.py.
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['acnet_backbone'], allow_failed_imports=False)

data_root = 'data/shapes_cls/'
classes = ('rectangle', 'ellipse', 'triangle', 'cross')
max_iters = 1500
batch_size = 32

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmdet.FCNResNet',
        depth=18,
        base_channels=32,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=len(classes),
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
# the detectors' normalisation (mmdet's DetDataPreprocessor, RGB)
data_preprocessor = dict(
    num_classes=len(classes),
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        ann_file='annotations/train.txt',
        data_prefix='',
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        ann_file='annotations/val.txt',
        data_prefix='',
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# AdamW, as the shapes detectors: from scratch on this small set it learns
# much faster than ACNet's ImageNet SGD recipe (measured here on the plain
# net: SGD lr 0.05 / momentum 0.9 / wd 1e-4 reached 31.8% val top-1 after 600
# iterations, AdamW lr 2e-3 / wd 0.05 41.8% after 300; chance is 25%)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters,
         T_max=max_iters - 50, eta_min=0)
]
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
