"""The like-for-like detector of the whole-image study: the ACResNet-50
RetinaNet of ``configs/acnet`` with one class, read / tested on the tree
set, for ``tools/deploy.py`` (:func:`r50_tree_config`); :func:`prepare_r50`
writes it with random weights."""
import os
import os.path as osp
from typing import Dict

from ..errors import InputError


def r50_tree_config(path: str, data_root: str = 'data/trees/',
                    base: str = 'configs/acnet/retinanet_acresnet50_fpn_1x_coco.py'
                    ) -> str:
    """Write the ACResNet-50 RetinaNet config of ``base`` with one class
    (``tree``) and the tree set as its train / test data (the COCO test
    pipeline kept: a 400 px patch is resized to 800 px, as DeepForest's
    torchvision RetinaNet does) to ``path``; returns ``path``."""
    if not osp.isfile(base):
        raise InputError(f'config not found: {base}')
    # relative to the written file, as mmengine resolves ``_base_``
    base = osp.relpath(osp.abspath(base), osp.dirname(osp.abspath(path)))
    root = data_root.rstrip('/') + '/'
    text = f'''# ACResNet-50 RetinaNet, one class, on the tree set: the like-for-like
# detector of the whole-image benchmark (acnet_backbone.tiling.benchmark)
_base_ = {base!r}
metainfo = dict(classes=('tree', ))
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=1))
train_dataloader = dict(dataset=dict(
    data_root={root!r}, metainfo=metainfo, ann_file='annotations/train.json',
    data_prefix=dict(img='train/')))
val_dataloader = dict(dataset=dict(
    data_root={root!r}, metainfo=metainfo, ann_file='annotations/val.json',
    data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={root + 'annotations/val.json'!r})
test_evaluator = val_evaluator
'''
    from ..staging import write_text
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_text(path, text)
    return path


#: what :func:`prepare_r50` writes
R50_FILES = ('retinanet_acresnet50_fpn_trees.py', 'random.pth')


def prepare_r50(out_dir: str, data_root: str = 'data/trees/', seed: int = 0,
                force: bool = False) -> Dict[str, str]:
    """The like-for-like detector for ``tools/deploy.py``: its config
    (:func:`r50_tree_config`) and a checkpoint with random weights, every BN
    randomised (:func:`~acnet_backbone.study.backends.
    random_detector_checkpoint`; ImageNet and DeepForest's release weights
    come from the internet), in ``out_dir``.

    Returns:
        dict: ``config`` and ``checkpoint`` paths.

    Raises:
        InputError: a file of :data:`R50_FILES` exists and ``force`` is
            False, or the folder cannot be written.
    """
    from ..staging import check_out_dir
    from ..study.backends import random_detector_checkpoint
    check_out_dir(out_dir, R50_FILES, force)
    config = r50_tree_config(osp.join(out_dir, R50_FILES[0]), data_root)
    ckpt = osp.join(out_dir, R50_FILES[1])
    tmp = ckpt + '.part'
    try:
        random_detector_checkpoint(config, tmp, seed)
        os.replace(tmp, ckpt)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return dict(config=config, checkpoint=ckpt)
