# The same RTMDet-tiny and schedule with Asymmetric Convolution Blocks in the
# CSPNeXt ('bn' mode, ACNet): every kxk conv of the stock backbone (the 3x3
# convs and the depthwise 5x5 ones) gets a 1xk and a kx1 branch. Fused, it is
# the plain config's CSPNeXt again (tools/fuse.py writes that config).
_base_ = './rtmdet_tiny_shapes.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ACNet',
        acb_mode='bn',
        acb_gamma_init=1.0,
        backbone={{_base_.cspnext_tiny}}))
