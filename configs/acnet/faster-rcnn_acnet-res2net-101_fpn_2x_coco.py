# Faster R-CNN with an ACB Res2Net-101 (ACNet wrapper around mmdet's Res2Net).
# Every kxk conv of the stock backbone gets an ACB ('bn' mode, ACNet); with
# acb_gamma_init=0 the detector starts as exactly the stock one with its
# ImageNet weights, and the branches grow from zero. tools/fuse.py turns the
# trained detector back into the stock config named in _base_.
_base_ = 'mmdet::res2net/faster-rcnn_res2net-101_fpn_2x_coco.py'
custom_imports = dict(imports=['acnet_backbone'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='ACNet', acb_mode='bn',
                  acb_gamma_init=0.0, backbone={{_base_.model.backbone}}))
