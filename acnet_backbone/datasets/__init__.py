from .shapes import (SEG_CLASSES, SHAPE_CLASSES, make_shapes_cls_dataset,
                     make_shapes_dataset, make_shapes_seg_dataset)

__all__ = [
    'SEG_CLASSES', 'SHAPE_CLASSES', 'make_shapes_cls_dataset',
    'make_shapes_dataset', 'make_shapes_seg_dataset'
]
