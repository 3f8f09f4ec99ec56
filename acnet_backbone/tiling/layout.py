"""Where the patches of a large image lie, boxes shifted back into the image,
and the merge of every patch's detections into one list.

A box that a patch border cuts is seen by that patch only in part. With
overlapping patches the neighbour across that border often sees the same
crown whole: a box that touches an *inner* edge of its patch (an edge that
is not the image border, within ``margin`` pixels) is dropped when another
patch holds it away from its own inner edges (:func:`cut_box_mask`), so the
whole view wins over the cut one. Boxes cut in every patch that sees them
(an object larger than the overlap and straddling it) are all kept; the NMS
across patches then keeps the highest-scoring of those that overlap by more
than its IoU threshold (mmcv's ``batched_nms``, class-aware by default as
in mmdet). Boxes fully inside the overlap band are found by both patches
and NMS keeps one of them.
"""
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError

MIN_PATCH = 32


@dataclasses.dataclass(frozen=True)
class Patch:
    """One window of the image, in image pixels.

    Args:
        x0 (int): left column.
        y0 (int): top row.
        width (int): width (the patch size, or less for an image smaller
            than a patch).
        height (int): height.
        inner (tuple[bool, bool, bool, bool]): whether the left, top, right
            and bottom edges lie inside the image (not on its border).
    """
    x0: int
    y0: int
    width: int
    height: int
    inner: Tuple[bool, bool, bool, bool]

    @property
    def box(self) -> Tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)`` of the patch in the image."""
        return (self.x0, self.y0, self.x0 + self.width,
                self.y0 + self.height)


def check_layout(patch: int, overlap: float) -> None:
    """Refuse a patch under :data:`MIN_PATCH` pixels and an overlap outside
    ``[0, 1)``.

    Raises:
        InputError: one line naming the argument.
    """
    if not isinstance(patch, (int, np.integer)) or patch < MIN_PATCH:
        raise InputError(f'`patch` {patch} is too small (at least '
                         f'{MIN_PATCH} pixels)')
    if not 0 <= overlap < 1:
        raise InputError(f'`overlap` {overlap} must be at least 0 and below '
                         '1 (a fraction of the patch)')


def patch_stride(patch: int, overlap: float) -> int:
    """Pixels between two patch origins: ``patch * (1 - overlap)``, at
    least 1."""
    return max(1, int(round(patch * (1 - overlap))))


def patch_grid(width: int, height: int, patch: int,
               overlap: float) -> List[Patch]:
    """The patches covering a ``width x height`` image, row by row.

    Origins every :func:`patch_stride` pixels, the last patch of a row or
    column moved back so that it ends at the image border (every patch is
    ``patch`` x ``patch`` unless the image is smaller; then the patch is
    the image's side). The axis layout is the tiling of the tree data set
    (:func:`acnet_backbone.datasets.trees.tile_starts`).

    Example:
        >>> [p.box for p in patch_grid(500, 400, 400, 0.05)]
        [(0, 0, 400, 400), (100, 0, 500, 400)]

    Raises:
        InputError: see :func:`check_layout`, or an empty image.
    """
    from ..datasets.trees import tile_starts
    check_layout(patch, overlap)
    if width < 1 or height < 1:
        raise InputError(f'the image is empty ({width}x{height})')
    stride = patch_stride(patch, overlap)
    patches = []
    for y0 in tile_starts(height, patch, stride):
        for x0 in tile_starts(width, patch, stride):
            w, h = min(patch, width - x0), min(patch, height - y0)
            patches.append(Patch(x0, y0, w, h, (
                x0 > 0, y0 > 0, x0 + w < width, y0 + h < height)))
    return patches


def clip_to_patch(dets: np.ndarray, labels: np.ndarray, width: int,
                  height: int) -> Tuple[np.ndarray, np.ndarray]:
    """Detections ``[K, 5]`` (x1, y1, x2, y2, score in patch pixels) clipped
    to the patch's ``width x height`` (a detector sees the patch padded),
    without the boxes that clipping made empty."""
    dets = np.asarray(dets, np.float32).reshape(-1, 5).copy()
    labels = np.asarray(labels).reshape(-1)
    dets[:, [0, 2]] = dets[:, [0, 2]].clip(0, width)
    dets[:, [1, 3]] = dets[:, [1, 3]].clip(0, height)
    keep = (dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])
    return dets[keep], labels[keep]


def shift_boxes(dets: np.ndarray, patch: Patch) -> np.ndarray:
    """Detections of a patch (patch pixels) in image pixels."""
    out = np.asarray(dets, np.float32).reshape(-1, 5).copy()
    out[:, [0, 2]] += patch.x0
    out[:, [1, 3]] += patch.y0
    return out


def _touch(boxes: np.ndarray, patches: Sequence[Patch],
           margin: float) -> np.ndarray:
    """``[N, M]``: box n comes within ``margin`` of an inner edge of patch
    m (or crosses it)."""
    p = np.array([q.box for q in patches], np.float64)
    inner = np.array([q.inner for q in patches], bool)
    b = boxes[:, None, :4].astype(np.float64)
    return ((inner[:, 0] & (b[..., 0] <= p[:, 0] + margin))
            | (inner[:, 1] & (b[..., 1] <= p[:, 1] + margin))
            | (inner[:, 2] & (b[..., 2] >= p[:, 2] - margin))
            | (inner[:, 3] & (b[..., 3] >= p[:, 3] - margin)))


def held_whole(boxes: np.ndarray, patches: Sequence[Patch],
               margin: float) -> np.ndarray:
    """``[N]``: some patch holds box n inside it and away from its inner
    edges (it sees the object whole)."""
    if not len(boxes):
        return np.zeros(0, bool)
    p = np.array([q.box for q in patches], np.float64)
    b = boxes[:, None, :4].astype(np.float64)
    inside = ((b[..., 0] >= p[:, 0]) & (b[..., 1] >= p[:, 1])
              & (b[..., 2] <= p[:, 2]) & (b[..., 3] <= p[:, 3]))
    return (inside & ~_touch(boxes, patches, margin)).any(1)


def cut_box_mask(boxes: np.ndarray, patch: Patch,
                 patches: Sequence[Patch], margin: float) -> np.ndarray:
    """``[N]``: the boxes of ``patch`` (image pixels) to drop as cut: they
    touch an inner edge of ``patch`` and another patch of ``patches`` holds
    them whole (:func:`held_whole`)."""
    boxes = np.asarray(boxes).reshape(-1, 5)
    if not len(boxes):
        return np.zeros(0, bool)
    return _touch(boxes, [patch], margin)[:, 0] & held_whole(
        boxes, patches, margin)


def merge_detections(per_patch: Sequence[Tuple[np.ndarray, np.ndarray]],
                     patches: Sequence[Patch],
                     iou_threshold: float = 0.5,
                     margin: float = 2.0,
                     drop_cut: bool = True,
                     class_agnostic: bool = False,
                     max_dets: Optional[int] = None
                     ) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """One detection list for the whole image.

    Args:
        per_patch (list): per patch ``(dets [K, 5], labels [K])`` in image
            pixels (:func:`shift_boxes`), in the order of ``patches``.
        patches (list[Patch]): the layout (:func:`patch_grid`).
        iou_threshold (float): IoU above which NMS across patches removes
            the lower-scoring box. Defaults to 0.5.
        margin (float): pixels from an inner patch edge within which a box
            counts as cut. Defaults to 2.0.
        drop_cut (bool): drop cut boxes that another patch holds whole
            (:func:`cut_box_mask`) before the NMS. Defaults to True.
        class_agnostic (bool): one NMS over every class. Defaults to False.
        max_dets (int, optional): keep at most this many (highest scores).

    Returns:
        tuple: ``dets [N, 5]`` (float32, by decreasing score), ``labels
        [N]`` (int64) and counts ``detections`` (all patches), ``cut_dropped``
        and ``kept``.
    """
    import torch
    from mmcv.ops import batched_nms
    if len(per_patch) != len(patches):
        raise ValueError('one detection list per patch is needed')
    dets, labels, dropped = [], [], 0
    for (d, lab), patch in zip(per_patch, patches):
        d = np.asarray(d, np.float32).reshape(-1, 5)
        lab = np.asarray(lab, np.int64).reshape(-1)
        if drop_cut and len(d):
            cut = cut_box_mask(d, patch, patches, margin)
            dropped += int(cut.sum())
            d, lab = d[~cut], lab[~cut]
        dets.append(d)
        labels.append(lab)
    dets = np.concatenate(dets) if dets else np.zeros((0, 5), np.float32)
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    counts = dict(detections=int(len(dets)) + dropped, cut_dropped=dropped)
    if len(dets):
        kept, keep = batched_nms(
            torch.from_numpy(dets[:, :4].copy()),
            torch.from_numpy(dets[:, 4].copy()),
            torch.from_numpy(labels),
            dict(type='nms', iou_threshold=float(iou_threshold),
                 class_agnostic=class_agnostic))
        dets = kept.numpy().astype(np.float32)
        labels = labels[keep.numpy()]
        if max_dets is not None:
            dets, labels = dets[:max_dets], labels[:max_dets]
    counts['kept'] = int(len(dets))
    return dets, labels, counts
