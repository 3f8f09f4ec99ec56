"""How two lists of detections compare: the measures every deploy stage
shares (the exact check of an export against torch, the agreement of an
INT8 or BF16 run with FP32), below all of them.

A list of detections is ``(dets [K, 5], labels [K])``: x1, y1, x2, y2,
score in input pixels, and the class index.
"""
import copy
from typing import Dict, Iterable, Optional, Tuple

import numpy as np
import torch

# box and score tolerances of the onnxruntime-vs-torch check (float32 maps
# through the same decoding: errors seen here are about 1e-5 px)
BOX_ATOL = 1e-2
SCORE_ATOL = 1e-3
# IoU at which an INT8 detection counts as the FP32 one (same label)
AGREEMENT_IOU = 0.5


def torch_detections(model, inputs, samples) -> Tuple[np.ndarray, np.ndarray]:
    """The torch detector's ``(dets [K, 5], labels [K])`` in input pixels,
    with boxes clipped to the input tensor (as the exported graph does)."""
    samples = copy.deepcopy(samples)
    for s in samples:
        s.set_metainfo(dict(img_shape=tuple(inputs.shape[-2:])))
    with torch.no_grad():
        result = model.predict(inputs, samples, rescale=False)[0]
    inst = result.pred_instances
    dets = torch.cat([inst.bboxes, inst.scores[:, None]], 1)
    return dets.numpy(), inst.labels.numpy()


def match_detections(ref: Tuple[np.ndarray, np.ndarray],
                     got: Tuple[np.ndarray, np.ndarray],
                     min_bbox_size: float = 0,
                     score_thr: float = 0.0,
                     max_per_img: Optional[int] = None) -> Dict:
    """Compare torch's detections ``ref`` with the ONNX file's ``got``: the
    count, the largest box and score differences and whether the labels
    agree.

    mmdet drops boxes no wider or taller than ``min_bbox_size`` (its
    ``test_cfg``; boxes clipped flat at the image border) and mmdeploy's
    graph may not: those ONNX boxes are counted (``n_degenerate``, those
    above the score floor) and left out, and so are detections whose score
    lies within ``SCORE_ATOL`` of a cut-off, where a near-tie may go either
    way: ``score_thr``, and the lowest score of a list that ``max_per_img``
    truncated.

    Returns:
        dict: ``n_torch``, ``n_onnx``, ``labels_equal``, ``n_degenerate`` and
        ``max_box_err`` / ``max_score_err``, which are None when the two
        lists cannot be paired (different counts or labels).
    """
    (rd, rl), (gd, gl) = ref, got
    floor = score_thr
    for d in (rd, gd):  # a truncated list: its last score is a cut-off
        if max_per_img and len(d) >= max_per_img:
            floor = max(floor, float(d[:, 4].min()))
    floor += SCORE_ATOL
    n_degenerate = 0
    if min_bbox_size is not None and min_bbox_size >= 0 and len(gd):
        keep = ((gd[:, 2] - gd[:, 0]) > min_bbox_size) & (
            (gd[:, 3] - gd[:, 1]) > min_bbox_size)
        # rows under the score floor (e.g. the all-zero rows mmdeploy's NMS
        # pads its output with) are no detections, flat or not
        n_degenerate = int((~keep & (gd[:, 4] > floor)).sum())
        gd, gl = gd[keep], gl[keep]
    ro, go = np.argsort(-rd[:, 4], kind='stable'), np.argsort(
        -gd[:, 4], kind='stable')
    rd, rl, gd, gl = rd[ro], rl[ro], gd[go], gl[go]
    rk, gk = rd[:, 4] > floor, gd[:, 4] > floor
    rd, rl, gd, gl = rd[rk], rl[rk], gd[gk], gl[gk]
    # the errors stay None (not 0) when the lists cannot be paired
    out = dict(n_torch=int(len(rd)), n_onnx=int(len(gd)), max_box_err=None,
               max_score_err=None, labels_equal=True,
               n_degenerate=n_degenerate)
    if len(rd) != len(gd):
        return out
    out.update(max_box_err=0.0, max_score_err=0.0)
    if len(rd):
        # within a group of equal scores the order is arbitrary: match each
        # torch box to the nearest ONNX box of the same label
        used = np.zeros(len(gd), bool)
        for i in range(len(rd)):
            cand = np.where(~used & (gl == rl[i]) & (np.abs(
                gd[:, 4] - rd[i, 4]) <= SCORE_ATOL))[0]
            if not len(cand):
                out.update(labels_equal=False, max_box_err=None,
                           max_score_err=None)
                return out
            errs = np.abs(gd[cand, :4] - rd[i, :4]).max(1)
            j = cand[int(errs.argmin())]
            used[j] = True
            out['max_box_err'] = max(out['max_box_err'], float(errs.min()))
            out['max_score_err'] = max(out['max_score_err'],
                                       float(abs(gd[j, 4] - rd[i, 4])))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``a [N, 4]`` and ``b [M, 4]`` (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def int8_agreement(fp32: Iterable[Tuple[np.ndarray, np.ndarray]],
                   int8: Iterable[Tuple[np.ndarray, np.ndarray]],
                   score_thr: float = 0.3,
                   iou: float = AGREEMENT_IOU) -> Dict:
    """How well the INT8 file's detections reproduce the FP32 file's.

    Each FP32 detection scoring at least ``score_thr`` is matched greedily
    (highest score first) to an unused INT8 detection of the same label
    with IoU >= ``iou`` (any INT8 score).

    Returns:
        dict: ``detections`` (FP32, above the threshold), ``matched``
        (fraction found in INT8), ``mean_iou`` and ``max_score_err`` of the
        matched pairs, and the thresholds.
    """
    n, ious, score_errs = 0, [], []
    for (fd, fl), (qd, ql) in zip(fp32, int8, strict=True):
        keep = fd[:, 4] >= score_thr
        order = np.argsort(-fd[keep, 4], kind='stable')
        fd, fl = fd[keep][order], fl[keep][order]
        n += len(fd)
        if not len(fd) or not len(qd):
            continue
        overlap = _iou(fd[:, :4], qd[:, :4])
        used = np.zeros(len(qd), bool)
        for i in range(len(fd)):
            cand = np.where(~used & (ql == fl[i]) & (overlap[i] >= iou))[0]
            if len(cand):
                j = cand[int(overlap[i, cand].argmax())]
                used[j] = True
                ious.append(float(overlap[i, j]))
                score_errs.append(abs(float(qd[j, 4] - fd[i, 4])))
    return dict(detections=n, score_thr=score_thr, iou_thr=iou,
                matched=round(len(ious) / n, 4) if n else None,
                mean_iou=round(float(np.mean(ious)), 4) if ious else None,
                max_score_err=round(max(score_errs), 4) if score_errs
                else None)
