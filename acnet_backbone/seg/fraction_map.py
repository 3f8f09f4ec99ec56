"""What a segmentor that scores classes at output stride ``f`` gets when its
scores are the true class fractions of each stride-``f`` cell, upsampled
bilinearly: a reference point for coarse heads such as FCN-32s, whatever the
backbone.

A stride-32 FCN on 128x128 images scores a 4x4 grid: each score covers a
32x32 patch. :func:`fraction_map_miou` gives each stride-``f`` cell the log
of its true class fractions (what the average of the patch's pixels says),
upsamples those scores with the FCN-32s transposed conv at its bilinear
initialisation (:class:`~acnet_backbone.seg.FCN32sHead`'s geometry) and
scores the argmax with mmseg's IoU functions.

It is **not** an upper bound of a trained FCN-32s: the network chooses its
scores (sharper, off-centre evidence) and, unless ``freeze_upsample=True``,
learns the upsampling kernel too; docs/results/segmentation.md ("How coarse
is a stride-32 head") has the measurements.
"""
from typing import Dict, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from mmseg.evaluation import IoUMetric

from ..backbones.base import bilinear_upsample


def fraction_map_miou(label_maps: Iterable[np.ndarray],
                      factor: int,
                      num_classes: int,
                      ignore_index: int = 255,
                      eps: float = 1e-3) -> Dict[str, object]:
    """mIoU (in percent, as mmseg reports it) of bilinearly upsampled
    stride-``factor`` class fractions against ``label_maps``.

    Args:
        label_maps: ``H x W`` integer label maps (any sizes).
        factor (int): the output stride of the score map.
        num_classes (int): classes ``0 .. num_classes - 1``.
        ignore_index (int): label of pixels that count nowhere.
        eps (float): added to the fractions before the log.

    Returns:
        dict: ``mIoU`` (float) and ``IoU`` (per-class list), both in %.
    """
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f'factor must be a positive int, got {factor!r}')
    upsample = bilinear_upsample(num_classes, factor)
    totals = [0, 0, 0, 0]
    seen = False
    for label in label_maps:
        seen = True
        label = torch.as_tensor(np.asarray(label)).long()
        if label.ndim != 2:
            raise ValueError('label maps must be 2-D, got shape '
                             f'{tuple(label.shape)}')
        h, w = label.shape
        valid = label != ignore_index
        if bool(((label[valid] < 0) | (label[valid] >= num_classes)).any()):
            raise ValueError(f'labels outside 0-{num_classes - 1} '
                             f'(ignore {ignore_index})')
        onehot = F.one_hot(label.clamp(0, num_classes - 1) * valid,
                           num_classes).permute(2, 0, 1).float()
        onehot = onehot * valid.float()
        # pad to a multiple of the stride, as the data preprocessor does
        ph, pw = -h % factor, -w % factor
        onehot = F.pad(onehot, (0, pw, 0, ph))
        weight = F.pad(valid.float(), (0, pw, 0, ph))[None]
        counts = F.avg_pool2d(onehot[None], factor)
        frac = counts / F.avg_pool2d(weight[None], factor).clamp_min(1e-12)
        scores = torch.log(frac + eps)
        if factor > 1:  # (stride 1: the fractions are the pixels)
            with torch.no_grad():
                scores = upsample(scores)
        scores = scores[0, :, :h, :w]
        areas = IoUMetric.intersect_and_union(scores.argmax(0), label,
                                              num_classes, ignore_index)
        totals = [t + a for t, a in zip(totals, areas)]
    if not seen:
        raise ValueError('no label maps')
    metrics = IoUMetric.total_area_to_metrics(
        *totals, metrics=['mIoU'])
    iou = [float(v) * 100 for v in metrics['IoU']]
    return dict(mIoU=float(np.nanmean(iou)), IoU=iou)
