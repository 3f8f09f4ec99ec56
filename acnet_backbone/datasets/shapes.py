"""A deterministic synthetic dataset: detection (COCO format), its
classification form (mmpretrain) and its segmentation form (mmseg).

Shapes of several classes in varied sizes, colours and textures, partly
overlapping, on cluttered backgrounds. Made locally from a seed: no download.
"""
import json
import os
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..staging import write_text

SHAPE_CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross')
# the segmentation classes: label 0 is the background, label i the shape
# class i - 1
SEG_CLASSES = ('background', ) + SHAPE_CLASSES


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    base = rng.integers(0, 256, 3)
    grad = np.linspace(0, 1, size)[:, None, None] * rng.integers(-80, 80, 3)
    img = np.clip(base + grad + rng.normal(0, 18, (size, size, 3)), 0, 255)
    canvas = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(4, 12)):  # clutter: lines and specks
        pts = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2)]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 3)))
    return canvas


def _fill(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A solid, striped or noisy texture of a random colour."""
    color = rng.integers(0, 256, 3).astype(np.float64)
    tex = np.broadcast_to(color, (h, w, 3)).copy()
    kind = rng.integers(0, 3)
    if kind == 1:
        period = rng.integers(3, 8)
        stripes = (np.arange(w)[None, :] + np.arange(h)[:, None]) // period % 2
        tex *= (0.6 + 0.4 * stripes)[..., None]
    elif kind == 2:
        tex += rng.normal(0, 25, (h, w, 3))
    return Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8))


def _mask(cls: str, w: int, h: int, rng: np.random.Generator) -> Image.Image:
    mask = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if cls == 'rectangle':
        draw.rectangle([0, 0, w - 1, h - 1], fill=255)
    elif cls == 'ellipse':
        draw.ellipse([0, 0, w - 1, h - 1], fill=255)
    elif cls == 'triangle':
        apex = int(rng.integers(0, w))
        draw.polygon([(apex, 0), (0, h - 1), (w - 1, h - 1)], fill=255)
    else:
        t_w, t_h = max(2, w // 3), max(2, h // 3)
        draw.rectangle([(w - t_w) // 2, 0, (w + t_w) // 2, h - 1], fill=255)
        draw.rectangle([0, (h - t_h) // 2, w - 1, (h + t_h) // 2], fill=255)
    return mask


def _covered(a, b) -> float:
    """The largest share of either box that the other one covers."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / min(a[2] * a[3], b[2] * b[3])


def _indices(num: int, progress: bool):
    """``range(num)``, with mmengine's progress bar when ``progress``."""
    if not progress:
        return range(num)
    from mmengine.utils import track_iter_progress
    return track_iter_progress(list(range(num)))


def _scene(rng: np.random.Generator,
           size: int) -> Tuple[Image.Image, List[Tuple]]:
    """One image of the detection set: a cluttered background and 1-4
    shapes, partly overlapping, pasted in order.

    Returns:
        tuple: the image and, per shape in paint order,
        ``(x, y, w, h, cls_id, mask)`` (``mask``: the ``w x h`` 'L' image
        through which the shape was pasted, 255 inside).
    """
    canvas = _background(rng, size)
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        cls_id = int(rng.integers(0, len(SHAPE_CLASSES)))
        for _attempt in range(10):
            w = int(size * rng.uniform(0.15, 0.5))
            h = int(max(8, min(size * 0.6, w * rng.uniform(0.6, 1.6))))
            x = int(rng.integers(0, size - w))
            y = int(rng.integers(0, size - h))
            # overlaps, but every object stays mostly visible: a box
            # hidden under a later shape would be label noise
            if all(_covered((x, y, w, h), b[:4]) < 0.35 for b in shapes):
                break
        else:
            continue
        mask = _mask(SHAPE_CLASSES[cls_id], w, h, rng)
        canvas.paste(_fill(rng, w, h), (x, y), mask)
        shapes.append((x, y, w, h, cls_id, mask))
    return canvas, shapes


def _make_split(root: str, split: str, num: int, size: int, seed: int,
                progress: bool) -> Dict:
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for idx in _indices(num, progress):
        canvas, shapes = _scene(rng, size)
        name = f'{split}_{idx:05d}.png'
        canvas.save(os.path.join(img_dir, name))
        image_id = idx + 1
        images.append(dict(id=image_id, file_name=name, width=size,
                           height=size))
        for x, y, w, h, cls_id, _mask_img in shapes:
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=cls_id + 1, bbox=[x, y, w, h], area=w * h,
                iscrowd=0))
    return dict(images=images, annotations=annotations, categories=[
        dict(id=i + 1, name=n) for i, n in enumerate(SHAPE_CLASSES)])


def make_shapes_dataset(root: str = 'data/shapes',
                        num_train: int = 600,
                        num_val: int = 100,
                        size: int = 160,
                        seed: int = 0,
                        progress: bool = True) -> Dict[str, str]:
    """Write ``root/{train,val}/*.png`` and ``root/annotations/{split}.json``.

    Deterministic: the same arguments give the same bytes. Annotation files
    are written to a temporary name and renamed, so an interrupted run never
    leaves a half-written annotation file behind.

    Returns:
        dict: split name -> annotation file path.
    """
    paths = {}
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    for split, num, split_seed in (('train', num_train, seed),
                                   ('val', num_val, seed + 10_000)):
        coco = _make_split(root, split, num, size, split_seed, progress)
        path = os.path.join(root, 'annotations', f'{split}.json')
        write_text(path, json.dumps(coco))
        paths[split] = path
    return paths


def _make_splits(make_split, root: str, num_train: int, num_val: int,
                 size: int, seed: int, progress: bool) -> Dict[str, str]:
    """``make_split`` for the train split (``seed``) and the val split
    (``seed + 10000``): split name -> the path it returns."""
    return {split: make_split(root, split, num, size, split_seed, progress)
            for split, num, split_seed in (('train', num_train, seed),
                                           ('val', num_val, seed + 10_000))}


def _make_cls_split(root: str, split: str, num: int, size: int, seed: int,
                    progress: bool) -> str:
    """``num`` images of one shape each (classes balanced in turn) and
    ``annotations/{split}.txt`` with ``path label`` lines (mmpretrain's
    ``CustomDataset`` format)."""
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    lines = []
    for idx in _indices(num, progress):
        cls_id = idx % len(SHAPE_CLASSES)
        canvas = _background(rng, size)
        w = int(size * rng.uniform(0.35, 0.8))
        h = int(max(8, min(size * 0.9, w * rng.uniform(0.6, 1.6))))
        x = int(rng.integers(0, size - w + 1))
        y = int(rng.integers(0, size - h + 1))
        canvas.paste(_fill(rng, w, h), (x, y),
                     _mask(SHAPE_CLASSES[cls_id], w, h, rng))
        name = f'{split}/{split}_{idx:05d}.png'
        canvas.save(os.path.join(root, name))
        lines.append(f'{name} {cls_id}\n')
    path = os.path.join(root, 'annotations', f'{split}.txt')
    write_text(path, ''.join(lines))
    return path


def make_shapes_cls_dataset(root: str = 'data/shapes_cls',
                            num_train: int = 2000,
                            num_val: int = 400,
                            size: int = 64,
                            seed: int = 100,
                            progress: bool = True) -> Dict[str, str]:
    """The classification form of the shapes data, for pretraining a
    backbone (mmpretrain): one shape per image on the detection set's
    cluttered backgrounds, the class is the label.

    Writes ``root/{train,val}/*.png`` and ``root/annotations/{split}.txt``
    (``relative/path.png label`` per line). Deterministic: the same arguments
    give the same bytes; annotation files are renamed into place last.

    Returns:
        dict: split name -> annotation file path.
    """
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    return _make_splits(_make_cls_split, root, num_train, num_val, size,
                        seed, progress)


def _label_map(size: int, shapes: List[Tuple]) -> np.ndarray:
    """The per-pixel labels of a scene of :func:`_scene`: 0 (background) or
    ``cls_id + 1`` of the shape painted last at the pixel."""
    labels = np.zeros((size, size), np.uint8)
    for x, y, w, h, cls_id, mask in shapes:
        labels[y:y + h, x:x + w][np.asarray(mask) > 0] = cls_id + 1
    return labels


def _make_seg_split(root: str, split: str, num: int, size: int, seed: int,
                    progress: bool) -> str:
    """``num`` scenes as ``img_dir/{split}/NAME.png`` with their label maps
    ``ann_dir/{split}/NAME.png``; the name list ``splits/{split}.txt`` is
    written last, so only complete pairs are ever listed."""
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(root, 'img_dir', split)
    ann_dir = os.path.join(root, 'ann_dir', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    names = []
    for idx in _indices(num, progress):
        canvas, shapes = _scene(rng, size)
        name = f'{split}_{idx:05d}'
        canvas.save(os.path.join(img_dir, f'{name}.png'))
        Image.fromarray(_label_map(size, shapes)).save(
            os.path.join(ann_dir, f'{name}.png'))
        names.append(f'{name}\n')
    path = os.path.join(root, 'splits', f'{split}.txt')
    write_text(path, ''.join(names))
    return path


def make_shapes_seg_dataset(root: str = 'data/shapes_seg',
                            num_train: int = 600,
                            num_val: int = 100,
                            size: int = 128,
                            seed: int = 200,
                            progress: bool = True) -> Dict[str, str]:
    """The semantic segmentation form of the shapes data, for mmseg: the
    detection set's scenes with a class for every pixel (``SEG_CLASSES``:
    0 background, 1-4 the shapes; where shapes overlap, the one painted
    last, i.e. the visible one).

    Writes ``root/img_dir/{train,val}/*.png`` (RGB), ``root/ann_dir/{train,
    val}/*.png`` (8-bit label maps of the same size) and
    ``root/splits/{split}.txt`` (one image name per line, no suffix: mmseg's
    ``ann_file``). Deterministic: the same arguments give the same bytes;
    the split files are renamed into place last.

    Args:
        root (str): output folder. Defaults to 'data/shapes_seg'.
        num_train (int): training images. Defaults to 600.
        num_val (int): validation images. Defaults to 100.
        size (int): image side in pixels (a multiple of 32 suits an FCN-32s).
            Defaults to 128.
        seed (int): seed of the train split (val: ``seed + 10000``).
            Defaults to 200.
        progress (bool): show a progress bar. Defaults to True.

    Returns:
        dict: split name -> split file path.
    """
    os.makedirs(os.path.join(root, 'splits'), exist_ok=True)
    return _make_splits(_make_seg_split, root, num_train, num_val, size, seed,
                        progress)
