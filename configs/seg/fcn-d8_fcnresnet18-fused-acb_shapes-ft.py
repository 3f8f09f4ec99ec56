# The deploy-form start for the dilated FCN: the ACB pretraining fused into a
# plain ResNet-18, fine-tuned as a plain ResNet-18. See
# configs/shapes/retinanet_fcnresnet18-fused-acb_fpn_shapes-ft.py.
_base_ = './fcn-d8_fcnresnet18_shapes-ft.py'
pretrained = ('work_dirs/journey/pretrain/acresnet18_shapes-cls/seed_0/'
              'backbone_fused.pth')
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
