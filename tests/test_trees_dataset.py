"""The real-image builder (acnet_backbone.datasets.trees) on a small fixture
that the test writes itself: tiling, clipped and ignored boxes, the split,
the sha256 check and the refusals of bad input (offline)."""
import hashlib
import json
import os
import os.path as osp
import zipfile

import numpy as np
import pytest
from PIL import Image

from acnet_backbone.datasets import trees
from acnet_backbone.errors import InputError

VOC = """<annotation><filename>{name}.png</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
OBJ = ('<object><name>{label}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>'
       '<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>')


def _voc(name, w, h, boxes):
    objects = ''.join(OBJ.format(label=b[0], x1=b[1], y1=b[2], x2=b[3],
                                 y2=b[4]) for b in boxes)
    return VOC.format(name=name, w=w, h=h, objects=objects).encode()


def _png(w, h, seed):
    buf = __import__('io').BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
        buf, format='PNG')
    return buf.getvalue()


@pytest.fixture
def source(tmp_path):
    """A wheel-shaped zip with a 200x160 train image and a 100x100 val
    image; returns (wheel path, sources table)."""
    files = {
        'big.png': _png(200, 160, 0),
        # a: inside tile (0,0); b: across the x=128 border of the 128 px
        # tiles, 70% left of it; c: in the bottom-right corner
        'big.xml': _voc('big', 200, 160, [('Tree', 10, 10, 40, 40),
                                          ('Tree', 100, 50, 140, 80),
                                          ('Tree', 170, 130, 199, 159)]),
        'small.png': _png(100, 100, 1),
        'small.xml': _voc('small', 100, 100, [('Dead', 5, 5, 25, 25),
                                              ('Alive', 50, 50, 80, 90)]),
    }
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    sources = {'big': ('train', 'A', sha['big.png'], sha['big.xml']),
               'small': ('val', 'B', sha['small.png'], sha['small.xml'])}
    wheel = tmp_path / 'fake.whl'
    with zipfile.ZipFile(wheel, 'w') as zf:
        for k, v in files.items():
            zf.writestr(f'deepforest/data/{k}', v)
    return str(wheel), sources, files


def _load(root, split):
    with open(osp.join(root, 'annotations', f'{split}.json')) as f:
        return json.load(f)


def test_tile_starts_cover_the_image_and_end_at_its_border():
    assert trees.tile_starts(400, 400, 200) == [0]
    assert trees.tile_starts(300, 400, 200) == [0]
    assert trees.tile_starts(1035, 400, 400) == [0, 400, 635]
    assert trees.tile_starts(2299, 400, 200)[-1] == 1899
    assert trees.tile_starts(800, 400, 200) == [0, 200, 400]


def test_clip_boxes_keeps_most_visible_and_ignores_slivers():
    boxes = [('Tree', 90, 0, 110, 10), ('Tree', 95, 20, 135, 30),
             ('Tree', 200, 0, 210, 10)]
    anns = trees.clip_boxes(boxes, 100, 0, 100, 100)
    # first: half inside -> kept (0.5 >= MIN_VISIBLE); second: 35 of 40 px;
    # third: outside -> dropped
    assert [a['iscrowd'] for a in anns] == [0, 0]
    assert anns[0]['bbox'] == [0, 0, 10, 10]
    assert anns[1]['bbox'] == [0, 20, 35, 10]
    sliver = trees.clip_boxes([('Tree', 60, 0, 110, 10)], 100, 0, 100, 100)
    assert sliver[0]['iscrowd'] == 1 and sliver[0]['attributes'][
        'visible'] == 0.2


def test_builds_split_by_source_with_one_class(source, tmp_path):
    wheel, sources, _ = source
    root = str(tmp_path / 'trees')
    paths = trees.make_trees_dataset(root, source=wheel, tile=128,
                                     train_stride=64, sources=sources)
    assert set(paths) == {'train', 'val', 'whole', 'val_B'}
    assert _load(root, 'val_B') == _load(root, 'val')
    train, val, whole = (_load(root, s) for s in ('train', 'val', 'whole'))
    assert train['categories'] == [dict(id=1, name='tree')]
    assert {i['source'] for i in train['images']} == {'big'}
    assert {i['source'] for i in val['images']} == {'small'}
    # train: x starts 0, 64, 72; y starts 0, 32 -> 6 tiles of 128x128
    assert len(train['images']) == 6
    assert all((i['width'], i['height']) == (128, 128)
               for i in train['images'])
    for info in train['images']:
        img = Image.open(osp.join(root, 'train', info['file_name']))
        assert img.size == (128, 128)
    # the 100 px val image is one tile smaller than 128: kept whole
    assert [(i['width'], i['height']) for i in val['images']] == [(100, 100)]
    labels = sorted(a['attributes']['label'] for a in val['annotations'])
    assert labels == ['Alive', 'Dead']
    assert {a['category_id'] for a in val['annotations']} == {1}
    # box b (x 100-140) in the tile at x0=0 (0-128): 28 of 40 px visible
    tile0 = next(i['id'] for i in train['images']
                 if (i['x0'], i['y0']) == (0, 0))
    b = [a for a in train['annotations'] if a['image_id'] == tile0
         and a['bbox'][0] == 100]
    assert len(b) == 1 and b[0]['bbox'][2] == 28 and b[0]['iscrowd'] == 0
    # whole images: every source box once, untiled
    assert len(whole['annotations']) == 5
    assert sorted(i['file_name'] for i in whole['images']) == [
        'big.png', 'small.png']
    ids = [a['id'] for a in train['annotations']]
    assert len(set(ids)) == len(ids)


def test_source_folder_works_like_the_wheel(source, tmp_path):
    wheel, sources, files = source
    folder = tmp_path / 'unpacked' / 'deepforest' / 'data'
    folder.mkdir(parents=True)
    for k, v in files.items():
        (folder / k).write_bytes(v)
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    trees.make_trees_dataset(a, source=wheel, sources=sources, tile=128)
    trees.make_trees_dataset(b, source=str(tmp_path / 'unpacked'),
                             sources=sources, tile=128)
    assert _load(a, 'train') == _load(b, 'train')


def test_wrong_checksum_is_refused_and_nothing_written(source, tmp_path):
    wheel, sources, _ = source
    bad = dict(sources, small=sources['small'][:3] + ('0' * 64, ))
    root = tmp_path / 'trees'
    with pytest.raises(InputError, match='small.xml .* sha256'):
        trees.make_trees_dataset(str(root), source=wheel, sources=bad)
    assert not root.exists()
    assert os.listdir(tmp_path) == ['fake.whl']


def test_damaged_xml_is_refused_and_nothing_written(tmp_path):
    files = {'x.png': _png(50, 50, 0), 'x.xml': b'<annotation><size>'}
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    folder = tmp_path / 'src'
    folder.mkdir()
    for k, v in files.items():
        (folder / k).write_bytes(v)
    sources = {'x': ('train', 'A', sha['x.png'], sha['x.xml'])}
    with pytest.raises(InputError, match='damaged annotation x.xml'):
        trees.make_trees_dataset(str(tmp_path / 'out'), source=str(folder),
                                 sources=sources)
    assert sorted(os.listdir(tmp_path)) == ['src']


def test_existing_output_is_kept_without_force(source, tmp_path):
    wheel, sources, _ = source
    root = tmp_path / 'trees'
    root.mkdir()
    (root / 'keep.txt').write_text('mine')
    with pytest.raises(InputError, match='exists; pass `force`'):
        trees.make_trees_dataset(str(root), source=wheel, sources=sources)
    assert (root / 'keep.txt').read_text() == 'mine'
    trees.make_trees_dataset(str(root), source=wheel, sources=sources,
                             force=True, tile=128)
    assert not (root / 'keep.txt').exists()
    assert (root / 'annotations' / 'val.json').is_file()


def test_missing_source_and_failed_download_are_one_line(tmp_path,
                                                        monkeypatch):
    with pytest.raises(InputError, match='does not exist'):
        trees.read_sources(str(tmp_path / 'nope.whl'))
    not_zip = tmp_path / 'x.whl'
    not_zip.write_text('not a zip')
    with pytest.raises(InputError, match='not a readable wheel'):
        trees.read_sources(str(not_zip))
    # no package index: pip fails -> one line naming --source's argument
    monkeypatch.setenv('PIP_INDEX_URL', 'http://127.0.0.1:9/simple')
    monkeypatch.setenv('PIP_NO_INDEX', '1')
    monkeypatch.setenv('PIP_FIND_LINKS', str(tmp_path))
    with pytest.raises(InputError, match='cannot download .* `source`'):
        trees.download_wheel(str(tmp_path / 'cache'))
    assert os.listdir(tmp_path / 'cache') == []


def test_real_sources_are_pinned():
    assert set(trees.SOURCES) == {
        '2019_YELL_2_528000_4978000_image_crop2',
        '2019_YELL_2_541000_4977000_image_crop', 'OSBS_029', 'SOAP_061'}
    splits = [v[0] for v in trees.SOURCES.values()]
    assert splits.count('train') == 1
    assert all(len(v[2]) == 64 and len(v[3]) == 64
               for v in trees.SOURCES.values())
