"""Classify an image with a fully convolutional ResNet and map where the top
class is seen (``tools/fcn_demo.py``): the global logits' top-5 ImageNet
classes and the dense sliding-window score map of the top class."""
import os
import os.path as osp
from typing import Dict, List

import numpy as np

from .errors import InputError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def class_names() -> List[str]:
    """The 1000 ImageNet class names shipped with the package."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'data',
                    'imagenet_classes.txt')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def load_image(image: str, size: int):
    """``(array HxWx3 in [0, 1], tensor [1, 3, H, W] normalised)`` of the
    image resized to a shorter side of ``size``.

    Raises:
        InputError: missing or unreadable.
    """
    import torch
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(image):
        raise InputError(f'image not found: {image}')
    try:
        img = Image.open(image).convert('RGB')
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f'cannot read image {image}: {err}') from None
    scale = size / min(img.size)
    img = img.resize((max(32, round(img.width * scale)),
                      max(32, round(img.height * scale))), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    x = torch.from_numpy((arr - MEAN) / STD).permute(2, 0, 1)[None].float()
    return arr, x


def load_classifier(checkpoint: str, depth: int):
    """An ``FCNResNet`` with its 1000-class top, from a torchvision
    classification checkpoint (a file or ``torchvision://NAME``), in eval
    mode.

    Raises:
        InputError: the file is missing or is not such a checkpoint.
    """
    from .backbones import FCNResNet
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise InputError(f'checkpoint not found: {checkpoint}')
    net = FCNResNet(depth, include_top=True, num_classes=len(class_names()),
                    top_pool='global',
                    init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    try:
        net.init_weights()
    except Exception as err:  # a file that is not a checkpoint, a bad pickle
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f'cannot load {checkpoint}: {text}') from None
    return net.eval()


def classify(image: str, checkpoint: str, depth: int = 18, window: int = 7,
             size: int = 448) -> Dict:
    """Top-5 classes of the global logits and the top class's dense
    ``window`` x ``window``-cell sliding-window probability map, upsampled to
    the image.

    Returns:
        dict: ``top5`` (``(probability, name)`` pairs), ``image`` (the
        resized array), ``heat`` (its map), ``name``, ``window``.

    Raises:
        InputError: bad image, checkpoint, or an image smaller than the
            window.
    """
    import torch
    import torch.nn.functional as F
    arr, x = load_image(image, size)
    net = load_classifier(checkpoint, depth)
    names = class_names()
    with torch.no_grad():
        probs = net(x)[0, :, 0, 0].softmax(0)
        net.top_pool = window
        try:
            dense = net(x)[0].softmax(0)
        except ValueError as err:
            raise InputError(str(err)) from None
    top = probs.topk(5)
    best = int(top.indices[0])
    heat = F.interpolate(dense[best][None, None], size=arr.shape[:2],
                         mode='bilinear', align_corners=False)[0, 0].numpy()
    return dict(top5=[(p, names[i]) for p, i in zip(top.values.tolist(),
                                                     top.indices.tolist())],
                image=arr, heat=heat, name=names[best], window=window)


def draw_heatmap(result: Dict, out: str) -> None:
    """The map of :func:`classify` over its image, written atomically as a
    PNG to ``out``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from .staging import save_figure
    arr, w = result['image'], result['window']
    fig, ax = plt.subplots(figsize=(6, 6 * arr.shape[0] / arr.shape[1]))
    ax.imshow(arr)
    overlay = ax.imshow(result['heat'], cmap='jet', alpha=0.45)
    fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(f'{result["name"]} ({result["top5"][0][0]:.2f}): '
                 f'{w}x{w}-cell window scores')
    ax.axis('off')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    save_figure(fig, out, dpi=100, bbox_inches='tight')
