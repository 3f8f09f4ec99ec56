# Faster R-CNN with an ACB HRNetV2p-W32 (ACNet wrapper around mmdet's HRNet).
# Every kxk conv of the stock backbone gets an ACB ('bn' mode, ACNet) whose
# branch BNs start at gamma 1/3 beside the ImageNet weights (the starting
# point measured best for ACResNet on the embedded data; with gamma 0 the
# branch kernels get no gradient until gamma moves, see
# configs/acnet/README.md). tools/fuse.py turns the trained detector back
# into the stock config named in _base_.
_base_ = 'mmdet::hrnet/faster-rcnn_hrnetv2p-w32-1x_coco.py'
custom_imports = dict(imports=['acnet_backbone'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='ACNet', acb_mode='bn',
                  acb_gamma_init=1 / 3, backbone={{_base_.model.backbone}}))
