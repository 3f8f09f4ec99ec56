# The practical starting point for the dilated FCN with online ACB (branch
# scales start at 0). See fcn-d8_acresnet18-add-g0_shapes-ft.py.
_base_ = './fcn-d8_acresnet18-add-g0_shapes-ft.py'
model = dict(backbone=dict(acb_mode='online'))
