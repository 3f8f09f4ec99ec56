"""Every registered deploy backend, through the one interface
(:class:`acnet_backbone.deploy.backends.DeployBackend`), runs the deployed
detector and agrees with torch; a new runtime is one registered class."""
import os

import pytest
from mmengine.config import Config

from acnet_backbone.deploy.backends import (ALL_PRECISIONS, REFERENCE,
                                            DeployBackend, all_backends,
                                            backend_for, backend_names,
                                            session_labels)
from acnet_backbone.deploy.detections import (BOX_ATOL, SCORE_ATOL,
                                              int8_agreement,
                                              match_detections,
                                              torch_detections)
from acnet_backbone.deploy.errors import FuseError
from acnet_backbone.deploy.export import load_stock_detector
from acnet_backbone.deploy.tasks.detection import dataset_images, preprocess
from test_end2end import RETINA, _setup, make_work


@pytest.fixture(scope='module')
def deployed(tmp_path_factory):
    """The tiny RetinaNet deployed with its INT8 file, and its test images
    with torch's detections on them."""
    from acnet_backbone.deploy.end2end import deploy_checkpoint
    work = make_work(tmp_path_factory, 'backends')
    config, ckpt = _setup(work, 'retina_backends', RETINA)
    out = work / 'deployed'
    deploy_checkpoint(config, ckpt, str(out), num_images=2, int8=True,
                      calib_images=4, threads=1)
    cfg = Config.fromfile(str(out / 'fused_config.py'))
    stock = load_stock_detector(cfg, str(out / 'fused.pth'))
    inputs, refs = [], []
    for path in dataset_images(cfg, 6):
        x, samples = preprocess(cfg, stock, path)
        inputs.append(x.numpy())
        refs.append(torch_detections(stock, x, samples))
    files = dict(onnx=str(out / 'end2end.onnx'),
                 onnx_int8=str(out / 'end2end_int8.onnx'))
    return dict(config=config, checkpoint=ckpt, cfg=cfg, files=files,
                inputs=inputs, refs=refs, work=work)


def test_the_registry_names_every_runtime():
    names = backend_names()
    assert names[0] == REFERENCE and set(names) >= {'onnxruntime', 'openvino'}
    labels = session_labels()
    for backend in all_backends():
        assert isinstance(backend, DeployBackend) and backend.display
        assert set(backend.precisions) <= set(ALL_PRECISIONS)
        assert 'fp32' in backend.precisions  # every runtime checks in fp32
        for p in backend.precisions:  # unique names, one column head each
            assert labels[backend.session_name(p)] == backend.label(p)
    assert len(labels) == sum(len(b.precisions) for b in all_backends())
    with pytest.raises(FuseError, match='unknown backend .tensorrt. '
                       r'\(choose from onnxruntime, openvino'):
        backend_for('tensorrt')


@pytest.mark.parametrize('name', backend_names())
def test_every_backend_runs_the_detector_like_torch(deployed, name):
    """The same calls for every runtime: its capabilities, its native
    precisions on this CPU, a session per precision, one batch per image;
    fp32 must match torch exactly, the lower precisions find most of
    torch's detections."""
    backend = backend_for(name)
    if backend.version() is None:
        pytest.skip(f'{backend.display} is not installed')
    caps = backend.capabilities()
    assert caps[name] == backend.version()  # the report names the runtime
    assert {'model', 'AVX2', 'VNNI', 'BF16'} <= set(caps)
    precisions = backend.native_precisions(caps)
    assert precisions == backend.check_precisions(precisions, caps)
    assert 'fp32' in precisions
    for precision in precisions:
        path = deployed['files'][backend.file_key(precision)]
        session = backend.session(path, precision, threads=1)
        got = [tuple(a[0] for a in session.run(['dets', 'labels'],
                                               {'input': x}))
               for x in deployed['inputs']]
        if precision == 'fp32':
            n = 0
            for ref, g in zip(deployed['refs'], got):
                m = match_detections(ref, g, 0, 0.05, 30)
                assert m['n_torch'] == m['n_onnx'] and m['labels_equal'], m
                assert m['max_box_err'] <= BOX_ATOL, m
                assert m['max_score_err'] <= SCORE_ATOL, m
                n += m['n_torch']
            assert n > 0
        else:
            agree = int8_agreement(deployed['refs'], got)
            assert agree['detections'] > 0
            assert agree['matched'] >= 0.8, (precision, agree)


def test_a_new_backend_is_one_registered_class(deployed, added_backend,
                                               tmp_path):
    """Registered, it is a --backend of the whole deployment: checked
    against torch, timed, evaluated and reported like OpenVINO, with no
    change to the pipeline (segmentors too: test_segmentation.py)."""
    from acnet_backbone.deploy.end2end import deploy_checkpoint
    from acnet_backbone.deploy.report import summary_lines
    assert added_backend in backend_names()
    with pytest.raises(FuseError, match='onnxruntime_1t runs fp32 on the '
                       'CPU; int8 needs `backend` onnxruntime or openvino'):
        deploy_checkpoint(deployed['config'], deployed['checkpoint'],
                          str(tmp_path / 'refused'), backend=added_backend,
                          precisions=['int8'])
    assert not os.path.exists(tmp_path / 'refused')
    report = deploy_checkpoint(
        deployed['config'], deployed['checkpoint'], str(tmp_path / 'out'),
        num_images=2, backend=added_backend, evaluate=True)
    section = report[added_backend]
    assert list(section['precisions']) == ['fp32']
    check = section['precisions']['fp32']['check']
    assert check['images'] == 2 and check['mismatched_images'] == 0
    assert report['latency_ms']['onnxruntime_1t_fp32'] > 0
    assert abs(report['eval']['onnxruntime_1t_fp32']['bbox_mAP'] -
               report['eval']['torch']['bbox_mAP']) <= 1e-3
    table = '\n'.join(summary_lines(report))
    assert 'torch / ONNX / onnxruntime 1 thread FP32' in table
    assert '| onnxruntime 1 thread FP32 ran |' in table


def test_save_ir_needs_a_backend_with_its_own_format(deployed, tmp_path):
    from acnet_backbone.deploy.end2end import deploy_checkpoint
    with pytest.raises(FuseError, match=r'`save_ir` \(OpenVINO IR\) needs '
                       '`backend` openvino'):
        deploy_checkpoint(deployed['config'], deployed['checkpoint'],
                          str(tmp_path / 'x'), save_ir=True)
    assert backend_for(REFERENCE).native_files(['end2end.onnx']) == []
    assert backend_for('openvino').native_files(['end2end.onnx']) == [
        'end2end.xml', 'end2end.bin']
