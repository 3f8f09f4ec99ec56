"""The calibration set of the INT8 file: training images (never those the
mAP is measured on) through the config's test pipeline and the model's
data preprocessor, and onnxruntime's reader over them."""
import os.path as osp
from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmengine.config import Config

from ..errors import FuseError
from .tasks.detection import dataset_images, preprocess


def calibration_set(cfg: Config, config: str,
                    calib_images: Union[int, Sequence[str]]) -> Dict:
    """The calibration inputs: training images through the test pipeline and
    the model's data preprocessor.

    Args:
        cfg (Config): the training config.
        config (str): its path (for messages).
        calib_images (int | Sequence[str]): how many training images (evenly
            spread over the training set), or the image files.

    Returns:
        dict: ``paths``, ``inputs`` (float32 ``[1, 3, H, W]`` arrays) and
        ``source`` (a description for the report).

    Raises:
        FuseError: no image, or an image that does not load.
    """
    from mmdet.registry import MODELS
    if isinstance(calib_images, int):
        if calib_images < 1:
            raise FuseError(f'no calibration images (asked for '
                            f'{calib_images})')
        paths = dataset_images(cfg, calib_images, split='train', spread=True)
        source = 'training set, evenly spaced, test pipeline'
        if not paths:
            raise FuseError(f'no calibration images: the training set of '
                            f'{config} is empty')
    else:
        paths, source = list(calib_images), 'given files, test pipeline'
        if not paths:
            raise FuseError('no calibration images given')
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    inputs = []
    for path in paths:
        if not osp.isfile(path):
            raise FuseError(f'calibration image not found: {path}')
        try:
            x = preprocess(cfg, preprocessor, path)[0]
        except Exception as err:
            raise FuseError(f'calibration image {path} cannot be read '
                            f'({type(err).__name__})') from None
        inputs.append(x.numpy().astype(np.float32))
    return dict(paths=paths, inputs=inputs, source=source)


class CalibrationReader:
    """onnxruntime's calibration data reader over a list of inputs."""

    def __init__(self, inputs: Sequence[np.ndarray]) -> None:
        self._inputs = iter(inputs)

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        x = next(self._inputs, None)
        return None if x is None else {'input': x}
