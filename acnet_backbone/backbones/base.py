"""mmdet's ResNet with an optional fully convolutional top, and the
checkpoint loading that both registered backbones share."""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.backbones.resnet import ResNet
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_with_prefix)
from torch import Tensor, nn

from ..errors import InputError
from ..state_fit import state_fit

TOP_POOLS = ('global', None)


class PretrainedMismatchError(InputError):
    """A ``Pretrained`` checkpoint does not fit the backbone (depth, widths,
    ACB vs plain, ACB mode): raised instead of loading it partially; the
    message is one line naming the first mismatch."""


def bilinear_kernel(factor: int) -> Tensor:
    """The ``2f x 2f`` kernel with which a stride-``f`` transposed conv
    (padding ``f // 2``) computes bilinear interpolation with
    ``align_corners=False`` away from the borders."""
    size = 2 * factor
    centre = factor - 0.5 if size % 2 == 0 else factor - 1
    taps = 1 - torch.abs(torch.arange(size, dtype=torch.float64) - centre) / factor
    return (taps[:, None] * taps[None, :]).float()


def bilinear_upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A depthwise stride-``factor`` transposed conv (kernel ``2 * factor``,
    padding ``factor // 2``, no bias) set to bilinear upsampling: FCN's
    upsampling layer. ``output = factor * input`` in each dimension."""
    upsample = nn.ConvTranspose2d(channels, channels, 2 * factor,
                                  stride=factor, padding=factor // 2,
                                  groups=channels, bias=False)
    fill_bilinear(upsample)
    return upsample


def fill_bilinear(upsample: nn.ConvTranspose2d) -> None:
    """(Re)set the kernels of a :func:`bilinear_upsample` layer to bilinear
    interpolation, e.g. after an init that overwrote them."""
    with torch.no_grad():
        upsample.weight.copy_(bilinear_kernel(upsample.stride[0]).expand_as(
            upsample.weight))


class ResNetWithTop(ResNet):
    """mmdet's ``ResNet`` plus an optional fully convolutional classifier.

    Not registered: :class:`FCNResNet` and :class:`ACResNet` build on it.
    Every keyword of mmdet's ``ResNet`` keeps its meaning.

    Args:
        include_top (bool): return one class-score tensor instead of the
            stage features. Defaults to False.
        num_classes (int): classes of the top. Defaults to 1000.
        top_pool (str | int | None): ``'global'``: adaptive average pooling,
            ``[N, K, 1, 1]`` at any input size; ``k`` (int): ``k x k`` average
            pooling with stride 1, a dense map of sliding-window scores;
            ``None``: a score vector per stride-32 location. Defaults to
            'global'.
        upsample (bool): with ``top_pool=None``, a depthwise stride-32
            transposed conv (kernel 64, padding 16) initialised as bilinear
            interpolation gives a per-pixel map of the input's size. Defaults
            to False.
    """

    def __init__(self,
                 depth: int,
                 include_top: bool = False,
                 num_classes: int = 1000,
                 top_pool: Union[str, int, None] = 'global',
                 upsample: bool = False,
                 **kwargs) -> None:
        super().__init__(depth, **kwargs)
        self.include_top = include_top
        self.num_classes = num_classes
        self.top_pool = top_pool
        self.with_upsample = upsample
        if not include_top:
            return
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got '
                             f'{num_classes!r}')
        if top_pool not in TOP_POOLS and not (
                isinstance(top_pool, int) and not isinstance(top_pool, bool)
                and top_pool >= 1):
            raise ValueError("top_pool must be 'global', None or a positive "
                             f'int, got {top_pool!r}')
        if upsample and top_pool is not None:
            raise ValueError('upsample=True needs top_pool=None (a score map '
                             'per stride-32 location)')
        if max(self.out_indices) != self.num_stages - 1:
            raise ValueError('include_top=True needs the last stage in '
                             f'out_indices, got {self.out_indices}')
        self.fc = nn.Conv2d(self.feat_dim, num_classes, 1)
        if upsample:
            self.upsample = bilinear_upsample(num_classes,
                                              self.output_stride)
        self._init_top()

    @property
    def output_stride(self) -> int:
        """Input pixels per location of the last stage's feature map."""
        return 4 * math.prod(self.strides)

    def _init_top(self) -> None:
        if not self.include_top:
            return
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)
        if self.with_upsample:
            fill_bilinear(self.upsample)

    def _after_default_init(self) -> None:
        """Re-apply what mmengine's default init overwrote (the top)."""
        self._init_top()

    def forward(self, x: Tensor) -> Union[Tuple[Tensor, ...], Tensor]:
        """Stage features, or with ``include_top`` one ``[N, K, h, w]``
        class-score tensor."""
        outs = super().forward(x)
        if not self.include_top:
            return outs
        feat = outs[-1]
        if self.top_pool == 'global':
            feat = F.adaptive_avg_pool2d(feat, 1)
        elif self.top_pool is not None:
            k = self.top_pool
            if feat.shape[-2] < k or feat.shape[-1] < k:
                minimum = self.output_stride * (k - 1) + 1
                raise ValueError(
                    f'input {x.shape[-2]}x{x.shape[-1]} gives a '
                    f'{feat.shape[-2]}x{feat.shape[-1]} feature map, smaller '
                    f'than the {k}x{k} pooling window: top_pool={k} needs '
                    f'inputs of at least {minimum}x{minimum}')
            feat = F.avg_pool2d(feat, k, stride=1)
        scores = self.fc(feat)
        if self.with_upsample:
            # Each output pixel o sits at feature coordinate (o + 0.5)/32 - 0.5
            # whatever the input size, so cropping the bottom/right excess of a
            # size that is not a multiple of 32 keeps the map aligned.
            scores = self.upsample(scores)[..., :x.shape[-2], :x.shape[-1]]
        return scores

    def train(self, mode: bool = True) -> 'ResNetWithTop':
        """As mmdet's ``ResNet.train`` (frozen stages, ``norm_eval``), but
        returns ``self`` like every ``nn.Module``."""
        super().train(mode)
        return self

    # ----------------------------------------------------------- loading
    def _pretrained_cfg(self) -> Optional[dict]:
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [
            self.init_cfg]
        found = [c for c in cfgs if c and c.get('type') == 'Pretrained']
        return found[-1] if found else None

    def init_weights(self) -> None:
        """mmengine's init, with two changes: the default init no longer
        overwrites what the subclass initialises on purpose, and a
        ``Pretrained`` checkpoint is loaded here, converting a torchvision
        ``fc`` into the 1x1 conv and reporting the outcome in one log line."""
        if self.is_init:
            return
        pretrained = self._pretrained_cfg()
        if pretrained is None:
            super().init_weights()
            self._after_default_init()
            return
        others = [c for c in (self.init_cfg if isinstance(
            self.init_cfg, list) else [self.init_cfg]) if c is not pretrained]
        saved, self.init_cfg = self.init_cfg, (others or None)
        try:
            super().init_weights()
        finally:
            self.init_cfg = saved
        self.load_pretrained(pretrained['checkpoint'],
                             prefix=pretrained.get('prefix'),
                             map_location=pretrained.get('map_location',
                                                         'cpu'))

    def convert_state_dict(self, state_dict: dict) -> Tuple[dict, list]:
        """Adapt a classification checkpoint's keys to this backbone.

        Returns the converted dict and the keys dropped on purpose (a
        classifier this backbone does not have).
        """
        state_dict = {k[7:] if k.startswith('module.') else k: v
                      for k, v in state_dict.items()}
        dropped = []
        for key in ('fc.weight', 'fc.bias'):
            if key not in state_dict:
                continue
            if not self.include_top:
                dropped.append(key)
                del state_dict[key]
            elif key == 'fc.weight' and state_dict[key].dim() == 2:
                state_dict[key] = state_dict[key][:, :, None, None]
        return state_dict, dropped

    def _expected_missing(self, key: str) -> bool:
        """Keys a plain ResNet checkpoint lacks by design (subclass hook)."""
        return False

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        map_location: str = 'cpu') -> None:
        """Load a (torchvision, mmdet or own) checkpoint into this backbone.

        ``checkpoint`` is a path, URL or ``torchvision://NAME``; ``prefix``
        selects a sub-module of a bigger model (``'backbone.'``).
        """
        logger = MMLogger.get_current_instance()
        if prefix:
            state_dict = _load_checkpoint_with_prefix(prefix, checkpoint,
                                                      map_location)
        else:
            ckpt = _load_checkpoint(checkpoint, map_location, logger)
            state_dict = ckpt.get('state_dict', ckpt)
        state_dict, dropped = self.convert_state_dict(dict(state_dict))
        own = self.state_dict()
        fit = state_fit(own, state_dict,
                        skip=lambda k: k.endswith('num_batches_tracked'))
        mismatched, unexpected, missing = (
            fit['mismatched'], fit['unexpected'], fit['missing'])
        by_design = [k for k in missing if self._expected_missing(k)]
        missing = [k for k in missing if not self._expected_missing(k)]
        n_acb = sum(self._expected_missing(k) for k in state_dict)
        if by_design and n_acb:
            # a checkpoint with ACB tensors must have all of them
            missing, by_design = missing + by_design, []
        if mismatched or missing or unexpected:
            what = type(self).__name__
            if mismatched:
                k = mismatched[0]
                first = (f'{k} is {tuple(state_dict[k].shape)} in the '
                         f'checkpoint, {tuple(own[k].shape)} in the backbone')
            elif unexpected:
                first = f'{unexpected[0]} is not in the backbone'
            else:
                first = f'{missing[0]} is not in the checkpoint'
            counts = ', '.join(f'{len(v)} {n}' for n, v in (
                ('shape mismatches', mismatched), ('unexpected', unexpected),
                ('missing', missing)) if v)
            raise PretrainedMismatchError(
                f'{checkpoint} does not fit this {what} (depth, widths, ACB '
                f'vs plain or acb_mode differ): {first} ({counts}); nothing '
                'loaded')
        self.load_state_dict(state_dict, strict=False)

        def names(keys: Sequence[str]) -> str:
            shown = ', '.join(keys[:4])
            return shown + (f' (+{len(keys) - 4} more)' if len(keys) > 4
                            else '')

        parts = [f'{type(self).__name__}: loaded {len(state_dict)} tensors '
                 f'from {checkpoint}']
        if n_acb:
            parts[0] += f' (ACB branch tensors among them: {n_acb})'
        if by_design:
            parts.append(f'{len(by_design)} ACB branch tensors not in it keep '
                         'their init')
        if dropped:
            parts.append(f'classifier {names(dropped)} ignored (include_top='
                         'False)')
        logger.info('; '.join(parts))
