"""The picture of a segmentor at work: input, ground truth and prediction
for a few test images, side by side."""
from typing import Dict, List

import numpy as np
import torch

from ..deploy.checkpoint import load_checkpoint_strict, load_config
from ..staging import save_figure
from .deploy import SegLogits, build_segmentor, val_batches


def colorize(labels: np.ndarray, palette: List) -> np.ndarray:
    """``[H, W]`` class indices -> ``[H, W, 3]`` uint8 colours (labels beyond
    the palette, e.g. mmseg's ignore index 255, are white)."""
    colors = np.full((256, 3), 255, np.uint8)
    colors[:len(palette)] = np.asarray(palette, np.uint8)
    return colors[labels.astype(np.int64).clip(0, 255)]


def draw_predictions(config: str,
                     checkpoint: str,
                     out_file: str,
                     num_images: int = 4) -> Dict:
    """Draw input / ground truth / prediction of the first ``num_images``
    test images of ``config`` with the trained ``checkpoint`` (loaded with
    ``weights_only=True``, strictly) into ``out_file`` (PNG), one row per
    image, in the dataset's palette.

    Args:
        config (str): the segmentor's config (mmseg).
        checkpoint (str): its trained checkpoint.
        out_file (str): the PNG to write (written to a temporary file
            beside it and renamed).
        num_images (int): rows. Defaults to 4.

    Returns:
        dict: ``images`` (paths drawn) and ``pixel_accuracy`` per image.

    Raises:
        FuseError: a missing config, a checkpoint that does not match it, a
            test set that cannot be read.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from PIL import Image

    cfg = load_config(config)
    model = build_segmentor(cfg)
    load_checkpoint_strict(model, checkpoint)
    model.eval()
    batches, meta = val_batches(cfg, model, num_images)
    palette, classes = meta['palette'], meta['classes']
    fig, axes = plt.subplots(len(batches), 3, squeeze=False,
                             figsize=(7.5, 2.5 * len(batches)))
    drawn, accuracy = [], []
    with torch.no_grad():
        for row, (inputs, samples) in zip(axes, batches):
            sample = model.postprocess_result(SegLogits(model)(inputs),
                                              samples)[0]
            pred = sample.pred_sem_seg.data[0].numpy()
            gt = sample.gt_sem_seg.data[0].numpy()
            accuracy.append(float((pred == gt).mean()))
            drawn.append(sample.img_path)
            panels = (np.asarray(Image.open(sample.img_path).convert('RGB')),
                      colorize(gt, palette), colorize(pred, palette))
            for ax, img, title in zip(row, panels, (
                    'input', 'ground truth',
                    f'prediction ({accuracy[-1]:.0%} of pixels)')):
                ax.imshow(img)
                ax.set_title(title, fontsize=8)
                ax.axis('off')
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(c) / 255)
               for c in palette]
    fig.legend(handles, classes, loc='lower center', ncol=len(classes),
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(fig, out_file, dpi=100)  # never a half-written picture
    return dict(images=drawn, pixel_accuracy=accuracy)
