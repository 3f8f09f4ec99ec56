"""The task adapters of the deploy core: what differs between a detector
and a segmentor (build, stock config, tensor module, check, sample inputs,
summary), behind one interface (:class:`.base.Task`), picked by
:func:`task_for`."""
from mmengine.config import Config

from ..common import is_segmentor_config
from .base import Task
from .detection import DetectionTask
from .segmentation import SegmentationTask

__all__ = ['DetectionTask', 'SegmentationTask', 'Task', 'task_for']


def task_for(cfg: Config) -> Task:
    """The adapter of ``cfg``'s model: :class:`SegmentationTask` for an mmseg
    segmentor (default scope ``mmseg`` or a ``decode_head``), else
    :class:`DetectionTask`."""
    return SegmentationTask() if is_segmentor_config(cfg) else \
        DetectionTask()
