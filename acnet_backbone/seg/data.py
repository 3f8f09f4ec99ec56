"""The embedded shapes data for mmsegmentation, and a label-map check."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS, TRANSFORMS

from ..datasets.shapes import SEG_CLASSES
from ..errors import InputError


class SegMapError(InputError):
    """A label map that does not fit its image or the classes."""


@DATASETS.register_module()
class ShapesSegDataset(BaseSegDataset):
    """The shapes data as per-pixel masks, made by
    ``tools/make_shapes_dataset.py --task seg``
    (:func:`~acnet_backbone.datasets.make_shapes_seg_dataset`).

    Five classes: 0 ``background`` and the four shapes. The layout is
    mmseg's: ``img_dir/{split}/NAME.png``, ``ann_dir/{split}/NAME.png``
    (8-bit label maps) and ``splits/{split}.txt`` (the names, as
    ``ann_file``).

    Args:
        img_suffix (str): image suffix. Defaults to '.png'.
        seg_map_suffix (str): label map suffix. Defaults to '.png'.
        reduce_zero_label (bool): the background is a class here, so False.
            Defaults to False.
        **kwargs: mmseg's ``BaseSegDataset`` arguments (``data_root``,
            ``ann_file``, ``data_prefix``, ``pipeline``, ...).
    """
    METAINFO = dict(
        classes=SEG_CLASSES,
        palette=[[0, 0, 0], [220, 20, 60], [0, 128, 255], [0, 170, 0],
                 [255, 160, 0]])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)


@TRANSFORMS.register_module()
class CheckSegMap(BaseTransform):
    """Refuse a label map that does not fit: a size other than its image's,
    or labels outside ``[0, num_classes)`` other than ``ignore_index``.

    Put it right after ``LoadAnnotations``. Without it, mmseg resizes or
    crops the pair apart, and an out-of-range label fails deep inside the
    loss (or is silently left out of the IoU). Raises :class:`SegMapError`
    with one line naming the file.

    Required keys: ``img``, ``gt_seg_map``, ``seg_map_path`` (optional,
    for the message). Modified keys: none.

    Args:
        num_classes (int): number of classes (labels ``0 .. num_classes-1``).
        ignore_index (int, optional): the one label allowed beyond them
            (mmseg's ``ignore_index``). Defaults to 255.
    """

    def __init__(self, num_classes: int,
                 ignore_index: Optional[int] = 255) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got '
                             f'{num_classes!r}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        seg = results['gt_seg_map']
        where = results.get('seg_map_path', 'the label map')
        img_hw = tuple(results['img'].shape[:2])
        if tuple(seg.shape[:2]) != img_hw:
            raise SegMapError(
                f'{where} is {seg.shape[0]}x{seg.shape[1]} but its image '
                f'{results.get("img_path", "")} is {img_hw[0]}x{img_hw[1]}')
        labels = np.unique(seg)
        bad = labels[(labels >= self.num_classes) | (labels < 0)]
        if self.ignore_index is not None:
            bad = bad[bad != self.ignore_index]
        if bad.size:
            shown = ', '.join(str(v) for v in bad[:5].tolist())
            raise SegMapError(
                f'{where} has labels outside the {self.num_classes} classes '
                f'(0-{self.num_classes - 1}, ignore {self.ignore_index}): '
                f'{shown}')
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
