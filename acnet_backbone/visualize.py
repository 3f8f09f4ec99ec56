"""Detections of several trained detectors beside the ground truth on the
same image, drawn with mmdet's visualizer: one row per image, the ground
truth first, then one panel per detector (e.g. plain vs ACB)."""
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import InputError


def gt_instances(coco, file_name: str, scale: float = 1.0):
    """The non-ignored boxes of ``file_name`` in the COCO object ``coco`` as
    mmengine ``InstanceData`` (xyxy, labels from 0), scaled by ``scale``."""
    import torch
    from mmengine.structures import InstanceData
    ids = [i['id'] for i in coco.dataset['images']
           if i['file_name'] == osp.basename(file_name)]
    if not ids:
        raise InputError(f'{osp.basename(file_name)} is not in the '
                         'annotation file')
    anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=ids[0]))
            if not a.get('iscrowd')]
    return InstanceData(
        bboxes=torch.tensor([[a['bbox'][0], a['bbox'][1],
                              a['bbox'][0] + a['bbox'][2],
                              a['bbox'][1] + a['bbox'][3]] for a in anns],
                            dtype=torch.float32).reshape(-1, 4) * scale,
        labels=torch.tensor([a['category_id'] - 1 for a in anns],
                            dtype=torch.long))


def draw_side_by_side(models: Sequence[Tuple[str, str, str]],
                      images: Sequence[str], ann_file: str, out_file: str,
                      score_thr: float = 0.3, scale: float = 1.0,
                      title: Optional[str] = None) -> List[Dict]:
    """Draw the ground truth and each model's detections on ``images``.

    Args:
        models (Sequence[tuple]): ``(label, config, checkpoint)`` per
            detector, drawn left to right after the ground truth.
        images (Sequence[str]): image files listed in ``ann_file``.
        ann_file (str): their COCO annotations.
        out_file (str): the picture (written atomically).
        score_thr (float): lowest score drawn. Defaults to 0.3.
        scale (float): enlargement of the images. Defaults to 1.
        title (str, optional): the figure's title.

    Returns:
        list[dict]: per image and model, the number of boxes drawn.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from pycocotools.coco import COCO

    from .staging import save_figure
    for path in images:
        if not osp.isfile(path):
            raise InputError(f'image {path} does not exist')
    coco = COCO(ann_file)
    detectors = [(label, init_detector(cfg, ckpt, device='cpu'))
                 for label, cfg, ckpt in models]
    vis = DetLocalVisualizer(name=f'side_by_side_{time.time_ns()}')
    meta = detectors[0][1].dataset_meta or {}
    vis.dataset_meta = dict(classes=meta.get('classes'),
                            palette=meta.get('palette'))
    cols = 1 + len(detectors)
    fig, axes = plt.subplots(len(images), cols, squeeze=False,
                             figsize=(4.2 * cols, 4.4 * len(images)))
    counts = []
    for row, path in zip(axes, images):
        img = mmcv.imrescale(mmcv.imread(path, channel_order='rgb'), scale,
                             interpolation='nearest')
        gt = gt_instances(coco, path, scale)
        panels = [('ground truth', DetDataSample(gt_instances=gt), True)]
        for label, model in detectors:
            pred = inference_detector(model, path).pred_instances
            pred = pred[pred.scores >= score_thr]
            pred.bboxes = pred.bboxes * scale
            panels.append((label, DetDataSample(pred_instances=pred), False))
            counts.append(dict(image=osp.basename(path), model=label,
                               boxes=len(pred), ground_truth=len(gt)))
        for ax, (label, sample, is_gt) in zip(row, panels):
            vis.add_datasample('det', img, sample, draw_gt=is_gt,
                               draw_pred=not is_gt, show=False,
                               pred_score_thr=score_thr)
            ax.imshow(vis.get_image())
            ax.set_axis_off()
            n = len(sample.gt_instances if is_gt else sample.pred_instances)
            ax.set_title(f'{label}: {n} {"boxes" if is_gt else "detections"}',
                         fontsize=10)
    fig.suptitle((title + '\n' if title else '') +
                 f'detections with score >= {score_thr}', fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save_figure(fig, out_file, dpi=90)
    return counts
