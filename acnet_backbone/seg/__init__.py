"""Semantic segmentation with the ACNet / FCN ResNets in mmsegmentation.

Importing this package (``custom_imports=dict(imports=['acnet_backbone.seg'])``
in an mmseg config) imports :mod:`acnet_backbone` (``mmdet.ACResNet``,
``mmdet.FCNResNet``, ``mmdet.ACNet`` for mmseg's cross-scope registry) and
registers into mmseg's registries:

- ``FCN32sHead`` (``MODELS``): the FCN-32s decode head, a 1x1 conv to the
  classes and a stride-32 transposed conv initialised as bilinear upsampling;
- ``ShapesSegDataset`` (``DATASETS``): the embedded shapes data as per-pixel
  masks (``tools/make_shapes_dataset.py --task seg``);
- ``CheckSegMap`` (``TRANSFORMS``): refuses a mask whose labels are outside
  the classes or whose size is not the image's, in one line.

Needs mmsegmentation 1.x (``pip install mmsegmentation ftfy regex``);
:mod:`acnet_backbone` itself does not import it.
"""
import acnet_backbone  # noqa: F401  (registers the backbones in mmdet)

from .data import CheckSegMap, SegMapError, ShapesSegDataset
from .fcn32s_head import FCN32sHead

__all__ = ['CheckSegMap', 'FCN32sHead', 'SegMapError', 'ShapesSegDataset']
