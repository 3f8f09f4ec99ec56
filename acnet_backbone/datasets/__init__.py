from .shapes import (SEG_CLASSES, SHAPE_CLASSES, make_shapes_cls_dataset,
                     make_shapes_dataset, make_shapes_seg_dataset)
from .trees import TREE_CLASSES, make_trees_dataset

__all__ = [
    'SEG_CLASSES', 'SHAPE_CLASSES', 'TREE_CLASSES', 'make_shapes_cls_dataset',
    'make_shapes_dataset', 'make_shapes_seg_dataset', 'make_trees_dataset'
]
