# The practical starting point, online ACB, branch scales starting at 1/3.
# See retinanet_acresnet18-add-g1-3_fpn_shapes-ft.py.
_base_ = './retinanet_acresnet18-add-g1-3_fpn_shapes-ft.py'
model = dict(backbone=dict(acb_mode='online'))
