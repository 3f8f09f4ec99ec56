"""A deterministic synthetic detection dataset in COCO format.

Shapes of several classes in varied sizes, colours and textures, partly
overlapping, on cluttered backgrounds. Made locally from a seed: no download.
"""
import json
import os
import tempfile
from typing import Dict

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross')


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


def _make_split(root: str, split: str, num: int, size: int, seed: int,
                progress: bool) -> Dict:
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    indices = range(num)
    if progress:
        from mmengine.utils import track_iter_progress
        indices = track_iter_progress(list(indices))
    for idx in indices:
        canvas = _background(rng, size)
        boxes = []
        for _ in range(int(rng.integers(1, 5))):
            cls_id = int(rng.integers(0, len(SHAPE_CLASSES)))
            for _attempt in range(10):
                w = int(size * rng.uniform(0.15, 0.5))
                h = int(max(8, min(size * 0.6, w * rng.uniform(0.6, 1.6))))
                x = int(rng.integers(0, size - w))
                y = int(rng.integers(0, size - h))
                # overlaps, but every object stays mostly visible: a box
                # hidden under a later shape would be label noise
                if all(_covered((x, y, w, h), b[:4]) < 0.35 for b in boxes):
                    break
            else:
                continue
            mask = _mask(SHAPE_CLASSES[cls_id], w, h, rng)
            canvas.paste(_fill(rng, w, h), (x, y), mask)
            boxes.append((x, y, w, h, cls_id))
        name = f'{split}_{idx:05d}.png'
        canvas.save(os.path.join(img_dir, name))
        image_id = idx + 1
        images.append(dict(id=image_id, file_name=name, width=size,
                           height=size))
        for x, y, w, h, cls_id in boxes:
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
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
        with os.fdopen(fd, 'w') as f:
            json.dump(coco, f)
        os.replace(tmp, path)
        paths[split] = path
    return paths


def _make_cls_split(root: str, split: str, num: int, size: int, seed: int,
                    progress: bool) -> str:
    """``num`` images of one shape each (classes balanced in turn) and
    ``annotations/{split}.txt`` with ``path label`` lines (mmpretrain's
    ``CustomDataset`` format)."""
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    lines = []
    indices = range(num)
    if progress:
        from mmengine.utils import track_iter_progress
        indices = track_iter_progress(list(indices))
    for idx in indices:
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
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        f.writelines(lines)
    os.replace(tmp, path)
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
    return {split: _make_cls_split(root, split, num, size, split_seed,
                                   progress)
            for split, num, split_seed in (('train', num_train, seed),
                                           ('val', num_val, seed + 10_000))}
