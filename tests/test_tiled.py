"""Tiled prediction over a large image (acnet_backbone.tiling): the patch
layout, shifting, the merge across patches (a box split by a patch border
is found once), the scores, the refusals and the tool's one-line errors;
the whole-image study's spec files and tools/whole_image_study.py."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from acnet_backbone.errors import InputError
from acnet_backbone.tiling.layout import (Patch, check_layout, cut_box_mask,
                                          merge_detections, patch_grid,
                                          shift_boxes)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'predict_large.py')
STUDY_TOOL = osp.join(ROOT, 'tools', 'whole_image_study.py')


class BlobDetector:
    """A 'detector' that sees pixels: every white blob of a patch is one
    box (its pixel extent, score 0.9, label 0), in patch pixels. A blob cut
    by the patch border comes out cut, as a real detector's box would."""

    nms_iou = 0.5

    def __init__(self):
        self.calls = []

    def __call__(self, patches):
        from scipy import ndimage
        self.calls.append(len(patches))
        out = []
        for p in patches:
            lab, n = ndimage.label(p[..., 0] > 127)
            boxes = [[s[1].start, s[0].start, s[1].stop, s[0].stop, 0.9]
                     for s in ndimage.find_objects(lab)]
            out.append((np.array(boxes, np.float32).reshape(-1, 5),
                        np.zeros(n, np.int64)))
        return out


def image_with(boxes, width, height):
    img = np.zeros((height, width, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:
        img[y1:y2, x1:x2] = 255
    return img


@pytest.mark.parametrize('width,height,patch,overlap', [
    (1249, 1035, 400, 0.05), (2299, 2472, 400, 0.05), (400, 400, 400, 0.05),
    (399, 50, 400, 0.2), (1000, 700, 256, 0.5), (97, 300, 32, 0.0)])
def test_patch_grid_covers_the_image(width, height, patch, overlap):
    patches = patch_grid(width, height, patch, overlap)
    covered = np.zeros((height, width), int)
    for p in patches:
        assert p.x0 >= 0 and p.y0 >= 0
        assert p.x0 + p.width <= width and p.y0 + p.height <= height
        assert (p.width, p.height) == (min(patch, width), min(patch, height))
        assert p.inner == (p.x0 > 0, p.y0 > 0, p.x0 + p.width < width,
                           p.y0 + p.height < height)
        covered[p.y0:p.y0 + p.height, p.x0:p.x0 + p.width] += 1
    assert covered.min() >= 1
    # neighbours overlap by at least the asked fraction
    xs = sorted({p.x0 for p in patches})
    for a, b in zip(xs, xs[1:]):
        assert a + patch - b >= round(patch * overlap)
    assert len(set((p.x0, p.y0) for p in patches)) == len(patches)


def test_patch_grid_counts():
    # 2299 x 2472 at 400 px, 5 %: 380 px stride, 6 x 7 origins + the last
    # patch of each row / column moved back to the border
    patches = patch_grid(2299, 2472, 400, 0.05)
    assert sorted({p.x0 for p in patches}) == [0, 380, 760, 1140, 1520, 1899]
    assert sorted({p.y0 for p in patches}) == [0, 380, 760, 1140, 1520, 1900,
                                                2072]
    assert len(patches) == 42


def test_shift_boxes():
    p = Patch(100, 50, 400, 400, (True, True, False, False))
    got = shift_boxes(np.array([[1, 2, 3, 4, 0.5]]), p)
    assert np.allclose(got, [[101, 52, 103, 54, 0.5]])
    assert shift_boxes(np.zeros((0, 5)), p).shape == (0, 5)


def test_a_box_split_by_a_patch_border_is_found_once():
    from acnet_backbone.tiling import predict_large
    # 300 x 200 image, 100 px patches, 30 % overlap: origins 0, 70, 140, 200
    # (x) and 0, 70, 100 (y). The first box crosses the border x = 100 of
    # patch 0 and the left edge x = 70 of patch 1; the second lies inside
    # the overlap band of two patches; the third is cut by x = 170.
    truth = [(85, 20, 135, 60), (75, 130, 95, 160), (150, 110, 190, 150)]
    img = image_with(truth, 300, 200)
    det = BlobDetector()
    result = predict_large(img, det, patch=100, overlap=0.3)
    got = sorted(tuple(int(round(v)) for v in d[:4]) for d in result['dets'])
    assert got == sorted(truth)
    assert result['counts']['cut_dropped'] > 0
    assert result['counts']['kept'] == 3
    assert sum(det.calls) == len(result['patches']) == 12
    # without the cut-box rule the split box's parts survive the NMS: the
    # rule, not luck, gives one box each
    loose = predict_large(img, BlobDetector(), patch=100, overlap=0.3,
                          drop_cut=False)
    assert len(loose['dets']) > 3


def test_batches_give_the_same_boxes():
    from acnet_backbone.tiling import predict_large
    img = image_with([(85, 20, 135, 60), (10, 150, 40, 190)], 300, 200)
    one = predict_large(img, BlobDetector(), patch=100, overlap=0.3)
    det = BlobDetector()
    four = predict_large(img, det, patch=100, overlap=0.3, batch=4)
    assert det.calls == [4, 4, 4]
    assert np.allclose(one['dets'], four['dets'])


def test_cut_box_kept_when_no_patch_holds_it_whole():
    # a 60 px object straddling a 20 px overlap: every view of it is cut
    patches = patch_grid(200, 100, 100, 0.2)   # origins 0, 80, 100
    assert [p.x0 for p in patches] == [0, 80, 100]
    cut = np.array([[60, 10, 100, 40, 0.9]], np.float32)   # seen by patch 0
    assert not cut_box_mask(cut, patches[0], patches, 2.0).any()
    inside = np.array([[85, 10, 95, 40, 0.9]], np.float32)
    assert not cut_box_mask(inside, patches[1], patches, 2.0).any()
    # touching patch 0's right edge, held whole by patch 1
    edge = np.array([[90, 10, 100, 40, 0.9]], np.float32)
    assert cut_box_mask(edge, patches[0], patches, 2.0).all()


def test_merge_is_class_aware_and_sorted():
    patches = patch_grid(100, 100, 100, 0.0)
    dets = np.array([[10, 10, 50, 50, 0.6], [11, 11, 50, 50, 0.8],
                     [10, 10, 50, 50, 0.7]], np.float32)
    labels = np.array([0, 0, 1])
    out, lab, counts = merge_detections([(dets, labels)], patches, 0.5)
    assert np.allclose(out[:, 4], [0.8, 0.7])
    assert list(lab) == [0, 1]
    assert counts == dict(detections=3, cut_dropped=0, kept=2)
    out, _, _ = merge_detections([(dets, labels)], patches, 0.5,
                                 class_agnostic=True)
    assert len(out) == 1


@pytest.mark.parametrize('patch,overlap,match', [
    (400, 1.0, '`overlap` 1.0'), (400, -0.1, '`overlap` -0.1'),
    (16, 0.05, '`patch` 16 is too small'), (31, 0.0, 'too small')])
def test_bad_layout_is_refused(patch, overlap, match):
    with pytest.raises(InputError, match=match):
        check_layout(patch, overlap)
    with pytest.raises(InputError):
        patch_grid(1000, 1000, patch, overlap)


def test_bad_batch_and_image_are_refused(tmp_path):
    from acnet_backbone.tiling import predict_large
    from acnet_backbone.tiling.predict import read_image
    with pytest.raises(InputError, match='`batch` 0'):
        predict_large(np.zeros((50, 50, 3), np.uint8), BlobDetector(),
                      patch=32, batch=0)
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not a png at all')
    with pytest.raises(InputError, match='cannot read image'):
        read_image(str(bad))
    with pytest.raises(InputError, match='image not found'):
        read_image(str(tmp_path / 'missing.png'))


def test_deploy_folder_without_its_files_is_refused(tmp_path):
    from acnet_backbone.tiling.runners import deploy_files
    with pytest.raises(InputError, match='deploy folder not found'):
        deploy_files(str(tmp_path / 'nothing'), 'ort', 'fp32')
    (tmp_path / 'fused_config.py').write_text('model = dict()\n')
    with pytest.raises(InputError, match='end2end.onnx is missing'):
        deploy_files(str(tmp_path), 'ort', 'fp32')
    (tmp_path / 'end2end.onnx').write_bytes(b'')
    assert deploy_files(str(tmp_path), 'openvino', 'bf16')['model'].endswith(
        'end2end.onnx')
    with pytest.raises(InputError, match='end2end_int8.onnx is missing'):
        deploy_files(str(tmp_path), 'ort', 'int8')
    with pytest.raises(InputError, match='fused.pth is missing'):
        deploy_files(str(tmp_path), 'torch', 'fp32')


@pytest.mark.parametrize('backend,precision,match', [
    ('ort', 'bf16', 'ort runs fp32, int8'), ('torch', 'int8', 'torch runs'),
    ('tensorrt', 'fp32', 'unknown `backend`')])
def test_bad_backend_or_precision_is_refused(backend, precision, match):
    from acnet_backbone.tiling.runners import check_backend
    with pytest.raises(InputError, match=match):
        check_backend(backend, precision)


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _tool(*args, path=TOOL):
    """A tool's main() (default tools/predict_large.py) in this process (one
    import of the stack for every call); returns its status and output."""
    import contextlib
    import importlib.util
    import io
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0] + '_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = tool.main(list(args))
    return Ran(rc, out.getvalue(), err.getvalue())


def test_tool_refuses_in_one_line_and_writes_nothing(tmp_path):
    img = tmp_path / 'img.png'
    from PIL import Image
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(img)
    out = tmp_path / 'out'
    cases = [
        (['--model', str(tmp_path), '--overlap', '1'], '--overlap 1.0'),
        (['--model', str(tmp_path), '--patch', '16'], '--patch 16'),
        (['--model', str(tmp_path)], 'fused_config.py is missing'),
        (['--model', str(tmp_path), '--backend', 'ort', '--precision',
          'bf16'], '--precision bf16'),
    ]
    for extra, match in cases:
        r = _tool(str(img), *extra, '--out-dir', str(out))
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2, r.stderr
        assert len(lines) == 1 and lines[0].startswith('error: '), r.stderr
        assert match in lines[0]
        assert not out.exists()
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'\x89PNG broken')
    r = _tool(str(bad), '--model', str(tmp_path), '--out-dir', str(out))
    assert r.returncode == 2 and 'cannot read image' in r.stderr
    assert not out.exists()


def test_match_counts_and_crowd_boxes():
    from acnet_backbone.tiling.score import match_counts
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
    pred = np.array([[0, 0, 10, 9], [21, 0, 30, 10], [50, 50, 60, 60],
                     [100, 0, 110, 10]])
    got = match_counts(pred, gt, crowd=np.array([[100, 0, 110, 10]]))
    assert got == dict(tp=2, gt=2, pred=3)   # the crowd match is no FP
    # IoU 0.3 < 0.4 is no match
    assert match_counts(np.array([[0, 0, 10, 3]]), gt[:1])['tp'] == 0


def test_scores_of_a_perfect_and_a_shifted_prediction():
    from acnet_backbone.tiling.score import as_results, score_detections
    boxes = np.array([[0, 0, 20, 20], [40, 40, 70, 70], [80, 0, 100, 30]],
                     float)
    gt = dict(images=[dict(id=1, file_name='a.png', width=100, height=100)],
              categories=[dict(id=1, name='tree')],
              annotations=[dict(id=i + 1, image_id=1, category_id=1,
                                bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                area=float((b[2] - b[0]) * (b[3] - b[1])),
                                iscrowd=0) for i, b in enumerate(boxes)])
    dets = np.c_[boxes, [0.9, 0.8, 0.7]]
    perfect = score_detections(gt, as_results(dets, np.zeros(3), 1))
    assert perfect['bbox_mAP'] == pytest.approx(1.0)
    assert all(r['recall'] == 1.0 and r['precision'] == 1.0
               for r in perfect['recall_precision'] if r['score_thr'] <= 0.5)
    # boxes shifted by 8 px: IoU 0.43 (20 px box), 0.58, 0.52 -> found at
    # IoU 0.4, missed at mAP@0.75
    shifted = score_detections(gt, as_results(dets, np.zeros(3), 1, dx=8))
    assert shifted['bbox_mAP_75'] == 0.0
    assert shifted['recall_precision'][0]['recall'] == 1.0


def test_torch_patch_detector_maps_boxes_back_to_the_patch(tmp_path):
    """A random detector whose test pipeline resizes (128 px): the tiled
    path's boxes of one patch equal mmdet's own rescaled prediction."""
    import torch
    from mmengine.config import Config

    import acnet_backbone  # noqa: F401
    from acnet_backbone.deploy.tasks.detection import preprocess
    from acnet_backbone.study.backends import random_detector_checkpoint
    from acnet_backbone.tiling import load_patch_detector
    config = osp.join(ROOT, 'configs', 'shapes',
                      'retinanet_fcnresnet18_fpn_shapes.py')
    ckpt = random_detector_checkpoint(config, str(tmp_path / 'r.pth'))
    det = load_patch_detector(config=config, checkpoint=ckpt, threads=1)
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    (dets, labels), = det([patch])
    from PIL import Image
    path = str(tmp_path / 'p.png')
    Image.fromarray(patch[..., ::-1]).save(path)   # PNG is RGB, patch BGR
    model = det.runner.model
    inputs, samples = preprocess(Config.fromfile(config), model, path)
    assert samples[0].metainfo['scale_factor'] != (1.0, 1.0)
    with torch.no_grad():
        ref = model.predict(inputs, samples, rescale=True)[0].pred_instances
    ref_boxes = ref.bboxes.numpy().clip(0, 200)
    keep = (ref_boxes[:, 2] > ref_boxes[:, 0]) & (
        ref_boxes[:, 3] > ref_boxes[:, 1])
    assert len(dets) == int(keep.sum()) > 0
    assert np.allclose(dets[:, :4], ref_boxes[keep], atol=1e-3)
    assert np.allclose(dets[:, 4], ref.scores.numpy()[keep], atol=1e-6)
    assert det.classes == ['rectangle', 'ellipse', 'triangle', 'cross']


def test_tool_writes_json_and_picture(tmp_path):
    import torch  # noqa: F401
    from acnet_backbone.study.backends import random_detector_checkpoint
    config = osp.join(ROOT, 'configs', 'shapes',
                      'retinanet_fcnresnet18_fpn_shapes.py')
    ckpt = random_detector_checkpoint(config, str(tmp_path / 'r.pth'))
    from PIL import Image
    img = tmp_path / 'big.png'
    Image.fromarray(np.random.default_rng(1).integers(
        0, 255, (150, 260, 3), dtype=np.uint8)).save(img)
    out = tmp_path / 'out'
    r = _tool(str(img), config, ckpt, '--patch', '128', '--overlap', '0.1',
              '--batch', '2', '--threads', '1', '--out-dir', str(out),
              '--no-progress')
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ['detections.json', 'detections.png']
    data = json.loads((out / 'detections.json').read_text())
    assert data['images'][0]['width'] == 260
    assert data['info']['num_patches'] == 6
    assert len(data['annotations']) == data['info']['counts']['kept']
    for a in data['annotations']:
        x, y, w, h = a['bbox']
        assert 0 <= x and 0 <= y and x + w <= 260.01 and y + h <= 150.01
    # a second run without --force is refused, the outputs stay
    r = _tool(str(img), config, ckpt, '--out-dir', str(out))
    assert r.returncode == 2 and 'exists' in r.stderr


# ------------------------------------------------------ the whole-image study

@pytest.mark.parametrize('study', ['accuracy', 'speed'])
def test_committed_specs_read(study):
    """configs/trees/whole_image_*.json: valid, every model under work_dirs/
    (the deploy folders docs/results/whole_image.md says how to make), the
    DeepForest rows on make deepforest-venv's Python."""
    from acnet_backbone.tiling.benchmark import read_spec
    spec = read_spec(osp.join(ROOT, 'configs', 'trees',
                              f'whole_image_{study}.json'), study)
    assert osp.isfile(osp.join(ROOT, spec['data_root'], 'annotations',
                               'whole.json')) or not osp.isdir(
        osp.join(ROOT, spec['data_root']))
    runtimes = set()
    for d in spec['detectors']:
        for key in ('model_dir', 'config', 'checkpoint'):
            assert d.get(key) is None or d[key].startswith('work_dirs/')
        runtimes.add((d.get('backend', 'torch'), d.get('precision', 'fp32')))
    assert {('ort', 'fp32'), ('ort', 'int8'), ('openvino', 'int8'),
            ('openvino', 'bf16'), ('torch', 'fp32')} <= runtimes
    if study == 'speed':
        peers = spec['deepforest']
        assert spec['baseline'] in {p['label'] for p in peers}
        assert {p['python'] for p in peers} == {'.venv-deepforest/bin/python'}


@pytest.mark.parametrize('text,match', [
    (None, 'spec file not found'),
    ('{not json', 'cannot read spec'),
    ('[]', 'not a JSON object'),
    ('{"image": "a.png", "detectors": []}', 'no `data_root`'),
    ('{"data_root": "d", "image": "a.png", "detectors": [], "baseline": "x"}',
     'unknown key `baseline` for accuracy'),
    ('{"data_root": "d", "image": "a.png", "detectors": [{"label": "a", '
     '"model_dir": "m"}, {"label": "a", "model_dir": "m"}]}',
     'labels repeat: a'),
    ('{"data_root": "d", "image": "a.png", "detectors": [{"label": "a", '
     '"backend": "ort"}]}', 'give `model_dir` or `config` and `checkpoint`'),
    ('{"data_root": "d", "image": "a.png", "detectors": [{"label": "a", '
     '"model_dir": "m", "threads": 2}]}', "unknown keys ['threads']"),
    ('{"data_root": "d", "image": "a.png", "detectors": [{"model_dir": '
     '"m"}]}', 'has no `label`'),
])
def test_bad_spec_is_one_line(tmp_path, text, match):
    spec = tmp_path / 'spec.json'
    if text is not None:
        spec.write_text(text)
    out = tmp_path / 'results.json'
    r = _tool('accuracy', str(spec), '--out', str(out), path=STUDY_TOOL)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith('error: ') and match in lines[0], lines[0]
    assert not out.exists()


def test_prepare_r50_refuses_existing_files(tmp_path):
    (tmp_path / 'random.pth').write_bytes(b'keep')
    r = _tool('prepare-r50', '--out-dir', str(tmp_path), path=STUDY_TOOL)
    assert r.returncode == 2 and '--force' in r.stderr, r.stderr
    assert (tmp_path / 'random.pth').read_bytes() == b'keep'
    assert not (tmp_path / 'retinanet_acresnet50_fpn_trees.py').exists()


def _tiny_tree_set(root):
    """A tree set of one 260x150 whole image with two boxes and one val
    tile cut from it (the layout tools/make_trees_dataset.py writes)."""
    from PIL import Image
    img = np.random.default_rng(3).integers(0, 255, (150, 260, 3),
                                            dtype=np.uint8)
    for sub in ('whole', 'val', 'annotations'):
        os.makedirs(root / sub)
    Image.fromarray(img).save(root / 'whole' / 'big.png')
    Image.fromarray(img[:128, :128]).save(root / 'val' / 'big_0_0.png')
    cats = [dict(id=1, name='tree')]
    boxes = [[10, 10, 30, 30], [150, 60, 40, 40]]

    def coco(images, anns):
        return json.dumps(dict(images=images, categories=cats, annotations=[
            dict(id=i + 1, image_id=1, category_id=1, bbox=b, area=b[2] * b[3],
                 iscrowd=0) for i, b in enumerate(anns)]))
    (root / 'annotations' / 'whole.json').write_text(coco(
        [dict(id=1, file_name='big.png', width=260, height=150)], boxes))
    (root / 'annotations' / 'val.json').write_text(coco(
        [dict(id=1, file_name='big_0_0.png', width=128, height=128,
              source='big')], boxes[:1]))


def test_studies_of_a_spec_write_their_sections(tmp_path):
    """run_spec on a tiny set with a random torch detector: each study
    writes its own section (the other kept) with the spec, the note, the
    load averages and, for speed, CPU seconds and the order of the runs."""
    import torch  # noqa: F401
    from acnet_backbone.study.backends import random_detector_checkpoint
    from acnet_backbone.tiling.benchmark import run_spec
    _tiny_tree_set(tmp_path / 'trees')
    config = osp.join(ROOT, 'configs', 'shapes',
                      'retinanet_fcnresnet18_fpn_shapes.py')
    ckpt = random_detector_checkpoint(config, str(tmp_path / 'r.pth'))
    det = dict(label='r18 [torch]', runtime='torch', config=config,
               checkpoint=ckpt)
    common = dict(data_root=str(tmp_path / 'trees'), image='big.png',
                  patch=128, threads=1, detectors=[det])
    (tmp_path / 'acc.json').write_text(json.dumps(dict(
        common, overlaps=[0.1])))
    (tmp_path / 'speed.json').write_text(json.dumps(dict(
        common, baseline='r18 [torch]', overlap=0.1)))
    out = str(tmp_path / 'results.json')
    acc = run_spec('accuracy', str(tmp_path / 'acc.json'), out, note='busy')
    assert acc['note'] == 'busy' and acc['spec_file'].endswith('acc.json')
    assert len(acc['load_average']['start']) == 3
    row, = acc['rows']
    assert row['tiles']['images'] == 1 and row['whole'][0]['patches'] == 6
    speed = run_spec('speed', str(tmp_path / 'speed.json'), out)
    row, = speed['rows']
    assert row['patches'] == 6 and row['speedup_vs_baseline'] == 1.0
    assert row['cpu_seconds'] > 0 and row['cpu_speedup_vs_baseline'] == 1.0
    assert len(row['load_average']) == 1 and 'interleaved' in speed['order']
    data = json.loads(open(out).read())
    assert set(data) >= {'accuracy', 'speed', 'machine', 'threads'}
    assert 'note' not in data['speed']
