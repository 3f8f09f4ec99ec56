# SSDLite with an ACB MobileNetV2 (ACNet wrapper; the depthwise 3x3 convs get
# depthwise branches).
# Every kxk conv of the stock backbone gets an ACB ('bn' mode, ACNet). The
# stock recipe trains this backbone from scratch, so the branches start as in
# ACNet (gamma 1). tools/fuse.py turns the trained detector back into the
# stock config named in _base_.
_base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'
custom_imports = dict(imports=['acnet_backbone'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='ACNet', acb_mode='bn',
                  acb_gamma_init=1.0, backbone={{_base_.model.backbone}}))
