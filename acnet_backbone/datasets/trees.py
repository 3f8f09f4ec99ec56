"""Real aerial images: the NEON tree-crown crops that the ``deepforest``
package (MIT licence) ships in its wheel, written as a COCO detection set.

The wheel is read as a zip file: ``deepforest`` is never imported or
installed (none of its heavy dependencies are needed). Every source file is
checked against a pinned sha256 before anything is written.

The split is geographic, so that the score measures generalisation to
unseen trees rather than memorised ones:

=====================================================  =====  ===========
source image (NEON RGB, 10 cm per pixel)               split  boxes
=====================================================  =====  ===========
``2019_YELL_2_528000_4978000_image_crop2`` 2299x2472   train  574 Tree
``2019_YELL_2_541000_4977000_image_crop`` 1249x1035    val    279 Tree
``OSBS_029`` 400x400 (Florida)                         val    61 Tree
``SOAP_061`` 400x400 (California)                      val    28 Dead, 9 Alive
=====================================================  =====  ===========

One class, ``tree``; the source label (``Tree``, ``Dead``, ``Alive``) stays
in each annotation's ``attributes``. The images are cut into square tiles
(:data:`TILE`, DeepForest's own patch size); train tiles overlap by half,
val tiles do not overlap except where the last tile of a row or column is
moved back inside the image. A box cut by a tile border is clipped to the
tile and kept when at least :data:`MIN_VISIBLE` of its area is inside;
a smaller visible part is written as ``iscrowd=1``, which mmdet ignores in
training and COCO evaluation ignores in matching (a detected half-crown is
neither a miss nor a false positive).
"""
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError

DEEPFOREST_VERSION = '2.1.0'
DEEPFOREST_WHEEL = f'deepforest-{DEEPFOREST_VERSION}-py3-none-any.whl'
WHEEL_SHA256 = ('8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd'
                '5d00ae54')
TREE_CLASSES = ('tree', )
TILE = 400
MIN_VISIBLE = 0.5

# name -> (split, site, sha256 of the image, sha256 of its VOC XML)
SOURCES = {
    '2019_YELL_2_528000_4978000_image_crop2': (
        'train', 'YELL',
        'a9bdb0f4447fdd899d22f567e0e20ba8320c5413b2ad0cd0ac8d9f3b6e0f9767',
        'bd431af6a5086d721eb731b22f5ea28cd8a8eab06883efc1c665391acbc68e11'),
    '2019_YELL_2_541000_4977000_image_crop': (
        'val', 'YELL',
        '178e58a23cc2642226a364a30f71bd9258ddc1b012c826f12250914a90c7a131',
        'cefe4b96888bacbf8af1674f000082e549aa707aa6590d545effb23e43f26631'),
    'OSBS_029': (
        'val', 'OSBS',
        'd9477c6a00e4902c7bee487d4c5582c3b8b9a2f77f3908a29628b816b291e6ee',
        '1f68c4011d7b351c29ca755072e77f3d16e6fd1f995bd05a9dd4eb952b55373c'),
    'SOAP_061': (
        'val', 'SOAP',
        '256508f1a62149bec4a80879077a865caf50e8cace095e6564c76befa480d424',
        '4833280af75fd9c47965a93e38945282835e9e725cac412bdb9469d63480947c'),
}

Box = Tuple[str, float, float, float, float]  # label, x1, y1, x2, y2


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/acnet_backbone/deepforest`` (``~/.cache`` when
    unset): where the downloaded wheel is kept."""
    base = os.environ.get('XDG_CACHE_HOME') or osp.expanduser('~/.cache')
    return osp.join(base, 'acnet_backbone', 'deepforest')


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheel(cache_dir: Optional[str] = None) -> str:
    """The pinned ``deepforest`` wheel in ``cache_dir``, downloaded with
    ``pip download --no-deps`` when missing (checked before it is kept).

    Raises:
        InputError: pip cannot get it (no network, no package index) or the
            download does not match the pinned sha256.
    """
    cache_dir = cache_dir or default_cache_dir()
    path = osp.join(cache_dir, DEEPFOREST_WHEEL)
    if osp.isfile(path):
        return path
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache_dir, prefix='.download-')
    try:
        proc = subprocess.run(
            [sys.executable, '-m', 'pip', 'download', '--no-deps',
             '--disable-pip-version-check', '-q', '-d', tmp,
             f'deepforest=={DEEPFOREST_VERSION}'],
            capture_output=True, text=True)
        got = osp.join(tmp, DEEPFOREST_WHEEL)
        if proc.returncode != 0 or not osp.isfile(got):
            lines = [ln for ln in (proc.stderr or '').splitlines() if ln]
            why = lines[-1].strip() if lines else 'no wheel written'
            raise InputError(
                f'cannot download deepforest=={DEEPFOREST_VERSION} with pip '
                f'({why}); on a machine without the package index pass '
                f'`source`: the wheel {DEEPFOREST_WHEEL} or its unpacked '
                'deepforest/data folder')
        with open(got, 'rb') as f:
            digest = _sha256(f.read())
        if digest != WHEEL_SHA256:
            raise InputError(f'the downloaded {DEEPFOREST_WHEEL} has sha256 '
                             f'{digest[:12]}..., expected '
                             f'{WHEEL_SHA256[:12]}...: refusing it')
        os.replace(got, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _source_names(sources: Dict[str, tuple]) -> List[str]:
    return [f'{n}.{ext}' for n in sources for ext in ('png', 'xml')]


def _read_folder(folder: str, names: List[str]) -> Dict[str, bytes]:
    for sub in ('', 'deepforest/data', 'data'):
        root = osp.join(folder, sub)
        if all(osp.isfile(osp.join(root, n)) for n in names):
            out = {}
            for n in names:
                with open(osp.join(root, n), 'rb') as f:
                    out[n] = f.read()
            return out
    missing = [n for n in names
               if not glob.glob(osp.join(folder, '**', n), recursive=True)]
    raise InputError(f'`source` folder {folder} lacks '
                     f'{missing[0] if missing else "the files side by side"}'
                     ' (expected the files of deepforest/data)')


def _read_wheel(path: str, wanted: List[str]) -> Dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            out = {}
            for n in wanted:
                member = f'deepforest/data/{n}'
                if member not in names:
                    raise InputError(f'`source` {path} holds no {member}')
                out[n] = zf.read(member)
            return out
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f'`source` {path} is not a readable wheel '
                         f'({err})') from None


def read_sources(source: str,
                 sources: Optional[Dict[str, tuple]] = None
                 ) -> Dict[str, bytes]:
    """The bytes of every source image and XML (file name -> bytes) from a
    wheel or a folder, each checked against its pinned sha256
    (``sources``: name -> (split, site, image sha256, XML sha256); defaults
    to :data:`SOURCES`).

    Raises:
        InputError: ``source`` is missing, unreadable, lacks a file, or a
            file's sha256 differs from the pinned one.
    """
    sources = sources or SOURCES
    if osp.isdir(source):
        files = _read_folder(source, _source_names(sources))
    elif osp.isfile(source):
        files = _read_wheel(source, _source_names(sources))
    else:
        raise InputError(f'`source` {source} does not exist')
    for name, (_, _, img_sha, xml_sha) in sources.items():
        for ext, want in (('png', img_sha), ('xml', xml_sha)):
            got = _sha256(files[f'{name}.{ext}'])
            if got != want:
                raise InputError(
                    f'{name}.{ext} in {source} has sha256 {got[:12]}..., '
                    f'expected {want[:12]}... (another deepforest version '
                    'or a damaged file): refusing it')
    return files


def parse_voc(data: bytes, name: str) -> Tuple[int, int, List[Box]]:
    """``(width, height, boxes)`` of one Pascal VOC annotation file.

    Raises:
        InputError: the XML cannot be parsed or a box is malformed.
    """
    try:
        root = ET.fromstring(data)
        size = root.find('size')
        width = int(size.findtext('width'))
        height = int(size.findtext('height'))
        boxes = []
        for obj in root.iter('object'):
            bb = obj.find('bndbox')
            x1, y1, x2, y2 = (float(bb.findtext(k))
                              for k in ('xmin', 'ymin', 'xmax', 'ymax'))
            if not (0 <= x1 < x2 and 0 <= y1 < y2):
                raise ValueError(f'box {x1, y1, x2, y2} is empty')
            boxes.append((obj.findtext('name').strip(), x1, y1, x2, y2))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        raise InputError(f'damaged annotation {name}: {err}') from None
    return width, height, boxes


def tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """Tile origins along one axis: every ``stride`` pixels, the last one
    moved back so that the tile ends at the image border (one tile of the
    whole length when the image is smaller than a tile)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def clip_boxes(boxes: Sequence[Box], x0: int, y0: int, w: int, h: int,
               min_visible: float = MIN_VISIBLE) -> List[dict]:
    """The boxes of a tile (origin ``x0, y0``, size ``w x h``) as COCO
    annotations in tile coordinates (without ids): clipped, ``iscrowd=1``
    where less than ``min_visible`` of the box's area is inside, dropped
    where nothing is."""
    anns = []
    for label, x1, y1, x2, y2 in boxes:
        cx1, cy1 = max(x1, x0), max(y1, y0)
        cx2, cy2 = min(x2, x0 + w), min(y2, y0 + h)
        if cx2 - cx1 < 1 or cy2 - cy1 < 1:
            continue
        visible = (cx2 - cx1) * (cy2 - cy1) / ((x2 - x1) * (y2 - y1))
        bw, bh = cx2 - cx1, cy2 - cy1
        anns.append(dict(
            category_id=1, bbox=[cx1 - x0, cy1 - y0, bw, bh], area=bw * bh,
            iscrowd=int(visible < min_visible),
            attributes=dict(label=label, visible=round(visible, 3))))
    return anns


def _coco(images: List[dict], anns: List[dict]) -> dict:
    for i, ann in enumerate(anns, 1):
        ann['id'] = i
    return dict(images=images, annotations=anns,
                categories=[dict(id=1, name=TREE_CLASSES[0])])


def _write_split(tmp: str, split: str, files: Dict[str, bytes],
                 sources: Dict[str, tuple], tile: int, stride: int) -> dict:
    import io

    from PIL import Image
    os.makedirs(osp.join(tmp, split), exist_ok=True)
    images, anns = [], []
    for name, (src_split, site, _, _) in sources.items():
        if src_split != split:
            continue
        width, height, boxes = parse_voc(files[f'{name}.xml'], f'{name}.xml')
        img = Image.open(io.BytesIO(files[f'{name}.png'])).convert('RGB')
        if img.size != (width, height):
            raise InputError(f'{name}.png is {img.size[0]}x{img.size[1]} but '
                             f'{name}.xml says {width}x{height}')
        for y0 in tile_starts(height, tile, stride):
            for x0 in tile_starts(width, tile, stride):
                w, h = min(tile, width - x0), min(tile, height - y0)
                file_name = f'{name}_{x0}_{y0}.png'
                img.crop((x0, y0, x0 + w, y0 + h)).save(
                    osp.join(tmp, split, file_name))
                image_id = len(images) + 1
                images.append(dict(id=image_id, file_name=file_name,
                                   width=w, height=h, site=site, source=name,
                                   x0=x0, y0=y0))
                for ann in clip_boxes(boxes, x0, y0, w, h):
                    ann['image_id'] = image_id
                    anns.append(ann)
    return _coco(images, anns)


def _write_whole(tmp: str, files: Dict[str, bytes],
                 sources: Dict[str, tuple]) -> dict:
    """The untiled source images (``whole/``) and all their boxes: the
    ground truth of tiled prediction over a whole image."""
    os.makedirs(osp.join(tmp, 'whole'), exist_ok=True)
    images, anns = [], []
    for name, (split, site, _, _) in sources.items():
        width, height, boxes = parse_voc(files[f'{name}.xml'], f'{name}.xml')
        with open(osp.join(tmp, 'whole', f'{name}.png'), 'wb') as f:
            f.write(files[f'{name}.png'])
        images.append(dict(id=len(images) + 1, file_name=f'{name}.png',
                           width=width, height=height, site=site,
                           split=split, source=name))
        for ann in clip_boxes(boxes, 0, 0, width, height):
            ann['image_id'] = len(images)
            anns.append(ann)
    return _coco(images, anns)


def site_subsets(coco: dict) -> Dict[str, dict]:
    """The images of a COCO split grouped by site (``{'YELL': coco, ...}``),
    their annotations with them: the val score per site."""
    out = {}
    for site in sorted({i['site'] for i in coco['images']}):
        ids = {i['id'] for i in coco['images'] if i['site'] == site}
        out[site] = dict(
            coco, images=[i for i in coco['images'] if i['id'] in ids],
            annotations=[a for a in coco['annotations']
                         if a['image_id'] in ids])
    return out


def make_trees_dataset(root: str = 'data/trees',
                       source: Optional[str] = None,
                       tile: int = TILE,
                       train_stride: Optional[int] = None,
                       cache_dir: Optional[str] = None,
                       force: bool = False,
                       sources: Optional[Dict[str, tuple]] = None
                       ) -> Dict[str, str]:
    """Write the tree-crown detection set under ``root``.

    ``root/{train,val}/*.png`` (tiles), ``root/whole/*.png`` (the untiled
    images) and ``root/annotations/{train,val,whole}.json`` (COCO, one class
    ``tree``), plus ``annotations/val_<SITE>.json`` per val site. The folder appears whole or not at all: it is built in a
    temporary folder beside ``root`` and renamed. Deterministic.

    Args:
        root (str): the output folder. Defaults to ``'data/trees'``.
        source (str, optional): the ``deepforest`` wheel or a folder with
            its ``deepforest/data`` files. Defaults to None: the pinned
            wheel, downloaded into ``cache_dir`` when missing.
        tile (int): tile side in pixels. Defaults to 400.
        train_stride (int, optional): distance between train tiles.
            Defaults to None: half a tile (200 px for 400 px tiles).
        cache_dir (str, optional): where the wheel is kept. Defaults to
            :func:`default_cache_dir`.
        force (bool): replace an existing ``root``. Defaults to False.
        sources (dict, optional): the source images, their split, site and
            pinned sha256 (see :func:`read_sources`). Defaults to
            :data:`SOURCES`.

    Returns:
        dict: split name -> annotation file path.

    Raises:
        InputError: bad input (see :func:`read_sources`, :func:`parse_voc`,
            :func:`download_wheel`), ``root`` exists without ``force``, or
            bad tile arguments.
    """
    train_stride = train_stride or tile // 2
    if tile < 64 or not 0 < train_stride <= tile:
        raise InputError('`tile` must be >= 64 and 0 < `train_stride` <= '
                         '`tile`')
    if osp.exists(root) and not force:
        raise InputError(f'{root} exists; pass `force` to replace it')
    sources = sources or SOURCES
    files = read_sources(source or download_wheel(cache_dir), sources)
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix='.trees-')
    try:
        os.makedirs(osp.join(tmp, 'annotations'))
        sets = dict(train=_write_split(tmp, 'train', files, sources, tile,
                                       train_stride),
                    val=_write_split(tmp, 'val', files, sources, tile, tile),
                    whole=_write_whole(tmp, files, sources))
        sets.update({f'val_{site}': coco for site, coco in
                     site_subsets(sets['val']).items()})
        for split, coco in sets.items():
            with open(osp.join(tmp, 'annotations', f'{split}.json'),
                      'w') as f:
                json.dump(coco, f)
        if osp.exists(root):
            old = tempfile.mkdtemp(dir=parent, prefix='.trees-old-')
            os.replace(root, osp.join(old, 'x'))
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {s: osp.join(root, 'annotations', f'{s}.json') for s in sets}


def dataset_summary(root: str) -> Dict[str, dict]:
    """Per split: tiles, boxes (counted / ignored) and box size quantiles
    (sqrt of the area, px) of a written set."""
    out = {}
    for split in ('train', 'val', 'whole'):
        with open(osp.join(root, 'annotations', f'{split}.json')) as f:
            coco = json.load(f)
        kept = [a for a in coco['annotations'] if not a['iscrowd']]
        side = np.sqrt([a['area'] for a in kept]) if kept else np.zeros(1)
        out[split] = dict(
            images=len(coco['images']), boxes=len(kept),
            ignored=len(coco['annotations']) - len(kept),
            box_side_p10_p50_p90=[round(float(q), 1) for q in
                                  np.percentile(side, [10, 50, 90])])
    return out
