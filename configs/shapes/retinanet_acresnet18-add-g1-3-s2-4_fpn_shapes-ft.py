# The gamma 1/3 practical start without branches in the frozen stage: with
# frozen_stages=1, branches added to stage 1 onto plain weights never train,
# so their random initial kernels stay in the pretrained stage 1 for the whole
# of fine-tuning. stage_with_acb=(False, True, True, True) leaves stage 1
# plain. See retinanet_acresnet18-add-g1-3_fpn_shapes-ft.py.
_base_ = './retinanet_acresnet18-add-g1-3_fpn_shapes-ft.py'
model = dict(backbone=dict(stage_with_acb=(False, True, True, True)))
