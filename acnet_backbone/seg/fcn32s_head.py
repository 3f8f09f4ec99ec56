"""The FCN-32s decode head for mmsegmentation."""
from typing import List, Optional, Sequence

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from ..backbones.base import bilinear_upsample, fill_bilinear


@MODELS.register_module()
class FCN32sHead(BaseDecodeHead):
    """FCN-32s: a 1x1 conv scores the classes at every location of the
    backbone's stride-32 feature map, and a stride-32 transposed conv,
    initialised as bilinear interpolation, upsamples the scores to the
    input's size.

    From "Fully Convolutional Networks for Semantic Segmentation" (Long,
    Shelhamer and Darrell, CVPR 2015; reference code
    shelhamer/fcn.berkeleyvision.org, ``voc-fcn32s``): the same two layers
    as the ``include_top=True, top_pool=None, upsample=True`` top of
    :class:`~acnet_backbone.FCNResNet`, as an mmseg decode head, so that the
    backbone stays a plain feature extractor (``include_top=False``) that
    fuses into a stock ResNet.

    The transposed conv is depthwise (one kernel per class), kernel
    ``2f``, stride ``f``, padding ``f // 2`` and no bias: an ``h x w`` score
    map becomes ``fh x fw``, each output pixel at the feature coordinate
    ``(o + 0.5) / f - 0.5`` (``align_corners=False``). For an input whose
    size is not a multiple of ``f`` the bottom and right excess is cropped
    (:meth:`loss_by_feat`, :meth:`predict_by_feat`), never resized, so the
    map stays aligned with the image.

    Args:
        in_channels (int): channels of the backbone feature (the one
            selected by ``in_index``).
        channels (int, optional): channels entering the 1x1 classifier
            conv (``conv_seg``); FCN-32s scores the backbone feature
            directly, so it must equal ``in_channels``. Defaults to None
            (``in_channels``).
        upsample_factor (int): the output stride of that feature, i.e. the
            stride of the transposed conv. Defaults to 32.
        freeze_upsample (bool): keep the transposed conv at bilinear
            interpolation (not trained), as the reference ``voc-fcn32s``
            (``lr_mult: 0``) does; False trains it from its bilinear init.
            Defaults to False.
        **kwargs: the other arguments of mmseg's ``BaseDecodeHead``
            (``num_classes``, ``in_index``, ``dropout_ratio``,
            ``loss_decode``, ``ignore_index``, ``align_corners``,
            ``init_cfg``, ...); ``input_transform`` must stay None (one
            feature map).

    Example:
        >>> import torch
        >>> head = FCN32sHead(in_channels=256, num_classes=5)
        >>> head([torch.rand(1, 256, 4, 4)]).shape
        torch.Size([1, 5, 128, 128])
    """

    def __init__(self,
                 in_channels: int,
                 channels: Optional[int] = None,
                 upsample_factor: int = 32,
                 freeze_upsample: bool = False,
                 **kwargs) -> None:
        if kwargs.get('input_transform') is not None:
            raise ValueError('FCN32sHead scores one feature map: '
                             'input_transform must be None, got '
                             f'{kwargs["input_transform"]!r}')
        if channels is None:
            channels = in_channels
        if channels != in_channels:
            raise ValueError(f'FCN32sHead scores the backbone feature '
                             f'directly: channels ({channels}) must equal '
                             f'in_channels ({in_channels})')
        if not isinstance(upsample_factor, int) or upsample_factor < 1:
            raise ValueError('upsample_factor must be a positive int, got '
                             f'{upsample_factor!r}')
        super().__init__(in_channels, channels, **kwargs)
        self.upsample_factor = upsample_factor
        self.freeze_upsample = freeze_upsample
        self.upsample = bilinear_upsample(self.out_channels, upsample_factor)
        self.upsample.weight.requires_grad_(not freeze_upsample)

    def init_weights(self) -> None:
        """mmseg's init (``conv_seg`` from ``init_cfg``), then the bilinear
        kernel again, whatever an ``init_cfg`` did to the module."""
        super().init_weights()
        fill_bilinear(self.upsample)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Scores ``[N, K, f*h, f*w]`` from the backbone features."""
        x = self._transform_inputs(inputs)
        return self.upsample(self.cls_seg(x))

    @staticmethod
    def crop(seg_logits: Tensor, size: Sequence[int]) -> Tensor:
        """The top-left ``size`` of ``seg_logits`` where it is larger (the
        excess of an input size that is not a multiple of the stride).
        Plain slicing (it stops at the end by itself), so that an ONNX
        trace keeps the size dynamic."""
        return seg_logits[..., :size[0], :size[1]]

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> dict:
        """mmseg's per-pixel loss, on scores cropped to the labels' size."""
        size = batch_data_samples[0].gt_sem_seg.data.shape[-2:]
        return super().loss_by_feat(self.crop(seg_logits, size),
                                    batch_data_samples)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """mmseg's prediction, on scores cropped to the (padded) input."""
        meta = batch_img_metas[0]
        size = meta['img_shape'] if isinstance(
            meta['img_shape'], torch.Size) else meta.get(
                'pad_shape', meta['img_shape'])[:2]
        return super().predict_by_feat(self.crop(seg_logits, size),
                                       batch_img_metas)
