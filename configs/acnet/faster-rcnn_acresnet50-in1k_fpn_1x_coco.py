# faster-rcnn with ACResNet-50 fine-tuned from an ACNet-pretrained checkpoint:
# configs/pretrain/acresnet50-bn_8xb32_in1k.py trained with mmpretrain (no
# public ImageNet checkpoint of an ACNet ResNet-50 exists). Every ACB tensor
# is loaded (one log line counts them); under norm_eval=True the pretrained
# norms stay frozen while the branch BNs of the trainable stages keep
# training. Multi-GPU with synchronised BN (branch norms included):
#   --cfg-options model.backbone.norm_cfg.type=SyncBN
_base_ = './faster-rcnn_acresnet50_fpn_1x_coco.py'
pretrained = 'work_dirs/acresnet50-bn_8xb32_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        acb_gamma_init=1.0,  # used only where the checkpoint has no value
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')))
