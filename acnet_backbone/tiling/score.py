"""Scores of detections against a COCO ground truth: bbox mAP with
pycocotools (as mmdet's ``CocoMetric`` computes it: up to 1000 detections
per image) and DeepForest's measure, recall and precision at IoU 0.4: each
ground-truth box is matched to at most one detection (the assignment that
maximises the summed IoU, ``scipy.optimize.linear_sum_assignment``), a
match counts at IoU >= 0.4, over the detections scoring at least a stated
threshold.

Ground-truth boxes marked ``iscrowd`` (in the tiled val set: trees less
than half inside a tile) are ignored as COCO ignores them: they are no
misses, and a detection matching one (IoU >= the threshold) is no false
positive.
"""
import contextlib
import copy
import io
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError

MAX_DETS = (100, 300, 1000)
SCORE_THRS = (0.1, 0.3, 0.5)


def load_ground_truth(ann_file: str, file_names: Optional[Sequence[str]] =
                      None, where: Optional[Dict] = None) -> Dict:
    """The images (and their boxes) of a COCO file: those named
    ``file_names``, or whose entries have every ``where`` key/value (e.g.
    ``{'source': ...}``); all when both are None.

    Raises:
        InputError: the file is missing or unreadable, or no image matches.
    """
    import json
    import os.path as osp
    if not osp.isfile(ann_file):
        raise InputError(f'annotation file not found: {ann_file}')
    try:
        with open(ann_file) as f:
            data = json.load(f)
        images = data['images']
    except (ValueError, KeyError, TypeError):
        raise InputError(f'{ann_file} is not a COCO annotation file') \
            from None
    if file_names is not None:
        images = [im for im in images if im['file_name'] in set(file_names)]
    if where:
        images = [im for im in images
                  if all(im.get(k) == v for k, v in where.items())]
    if not images:
        raise InputError(f'{ann_file} has no image matching '
                         f'{file_names or where}')
    ids = {im['id'] for im in images}
    return dict(images=images, categories=data.get('categories', []),
                annotations=[a for a in data.get('annotations', [])
                             if a['image_id'] in ids])


def _xyxy(bbox: Sequence[float]) -> List[float]:
    x, y, w, h = bbox
    return [x, y, x + w, y + h]


def coco_map(gt: Dict, results: List[Dict]) -> Dict[str, float]:
    """bbox mAP, mAP@0.5 and mAP@0.75 (pycocotools, max detections
    :data:`MAX_DETS`; mAP reads the last) of COCO ``results`` (dicts with
    ``image_id``, ``category_id``, ``bbox`` (x, y, w, h) and ``score``)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    if not results:
        return dict(bbox_mAP=0.0, bbox_mAP_50=0.0, bbox_mAP_75=0.0)
    sink = io.StringIO()  # pycocotools prints its progress and tables
    with contextlib.redirect_stdout(sink):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        dt = coco.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(coco, dt, 'bbox')
        ev.params.maxDets = list(MAX_DETS)
        ev.params.imgIds = [im['id'] for im in gt['images']]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(bbox_mAP=round(float(ev.stats[0]), 4),
                bbox_mAP_50=round(float(ev.stats[1]), 4),
                bbox_mAP_75=round(float(ev.stats[2]), 4))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch
    from torchvision.ops import box_iou
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return box_iou(torch.as_tensor(a, dtype=torch.float64),
                   torch.as_tensor(b, dtype=torch.float64)).numpy()


def match_counts(pred: np.ndarray, gt: np.ndarray,
                 crowd: Optional[np.ndarray] = None,
                 iou_thr: float = 0.4) -> Dict[str, int]:
    """One image: predictions ``[P, 4]`` and ground truth ``[G, 4]``
    (x1, y1, x2, y2) matched one to one (maximal summed IoU); ``crowd``
    ``[C, 4]``: ignored boxes.

    Returns:
        dict: ``tp`` (matches at IoU >= ``iou_thr``), ``gt`` (G),
        ``pred`` (P less those only matching a crowd box).
    """
    from scipy.optimize import linear_sum_assignment
    pred = np.asarray(pred, np.float64).reshape(-1, 4)
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    matched = np.zeros(len(pred), bool)
    tp = 0
    if len(pred) and len(gt):
        iou = _iou(pred, gt)
        rows, cols = linear_sum_assignment(-iou)
        good = iou[rows, cols] >= iou_thr
        tp = int(good.sum())
        matched[rows[good]] = True
    n_pred = len(pred)
    if crowd is not None and len(crowd) and (~matched).any():
        hits = _iou(pred[~matched], np.asarray(crowd).reshape(-1, 4))
        n_pred -= int((hits.max(1) >= iou_thr).sum())
    return dict(tp=tp, gt=int(len(gt)), pred=int(n_pred))


def recall_precision(gt: Dict, results: List[Dict], iou_thr: float = 0.4,
                     score_thrs: Sequence[float] = SCORE_THRS) -> List[Dict]:
    """DeepForest's recall and precision at ``iou_thr``, summed over the
    images of ``gt``, at each score threshold of ``score_thrs``.

    Returns:
        list[dict]: per threshold ``score_thr``, ``iou_thr``, ``recall``,
        ``precision``, ``tp``, ``gt`` and ``pred``.
    """
    out = []
    for thr in score_thrs:
        total = dict(tp=0, gt=0, pred=0)
        for im in gt['images']:
            anns = [a for a in gt['annotations'] if a['image_id'] == im['id']]
            boxes = np.array([_xyxy(a['bbox']) for a in anns
                              if not a.get('iscrowd')]).reshape(-1, 4)
            crowd = np.array([_xyxy(a['bbox']) for a in anns
                              if a.get('iscrowd')]).reshape(-1, 4)
            pred = np.array([_xyxy(r['bbox']) for r in results
                             if r['image_id'] == im['id']
                             and r['score'] >= thr]).reshape(-1, 4)
            for k, v in match_counts(pred, boxes, crowd, iou_thr).items():
                total[k] += v
        out.append(dict(
            score_thr=thr, iou_thr=iou_thr,
            recall=round(total['tp'] / max(total['gt'], 1), 4),
            precision=round(total['tp'] / max(total['pred'], 1), 4),
            **total))
    return out


def score_detections(gt: Dict, results: List[Dict], iou_thr: float = 0.4,
                     score_thrs: Sequence[float] = SCORE_THRS) -> Dict:
    """:func:`coco_map` and :func:`recall_precision` of ``results``
    against ``gt`` (see :func:`load_ground_truth`), with the counts of
    images, boxes (crowd boxes apart) and detections."""
    boxes = [a for a in gt['annotations'] if not a.get('iscrowd')]
    return dict(images=len(gt['images']), boxes=len(boxes),
                ignored=len(gt['annotations']) - len(boxes),
                detections=len(results), **coco_map(gt, results),
                recall_precision=recall_precision(gt, results, iou_thr,
                                                  score_thrs))


def as_results(dets: np.ndarray, labels: np.ndarray, image_id: int,
               dx: float = 0.0, dy: float = 0.0) -> List[Dict]:
    """Detections ``[N, 5]`` (x1, y1, x2, y2, score) as COCO results of
    image ``image_id`` (category ids from 1), shifted by ``dx, dy``."""
    out = []
    for (x1, y1, x2, y2, s), lab in zip(np.asarray(dets, float),
                                        np.asarray(labels)):
        out.append(dict(image_id=image_id, category_id=int(lab) + 1,
                        bbox=[x1 + dx, y1 + dy, x2 - x1, y2 - y1],
                        score=float(s)))
    return out
