# YOLOX-s with an ACB CSPDarknet (ACNet wrapper around mmdet's CSPDarknet).
# Every kxk conv of the stock backbone gets an ACB ('bn' mode, ACNet). The
# stock recipe trains this backbone from scratch, so the branches start as in
# ACNet (gamma 1). tools/fuse.py turns the trained detector back into the
# stock config named in _base_.
_base_ = 'mmdet::yolox/yolox_s_8xb8-300e_coco.py'
custom_imports = dict(imports=['acnet_backbone'], allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='ACNet', acb_mode='bn',
                  acb_gamma_init=1.0, backbone={{_base_.model.backbone}}))
