"""Export: the fused, stock detector to an end-to-end ONNX file through
mmdeploy (decoding and NMS inside the graph), and the op library such a
file may need.

File contract (``end2end.onnx``): input ``input`` = the ``[1, 3, H, W]``
float32 tensor after the config's data preprocessor (H, W dynamic); outputs
``dets`` ``[1, K, 5]`` (x1, y1, x2, y2, score in input pixels, boxes clipped
to the input tensor's extent) and ``labels`` ``[1, K]`` (int64). Unlike
mmdet, mmdeploy's graph keeps boxes that clipping made flat (zero width or
height, ``min_bbox_size``); they overlap nothing, drop them if they bother
you.
"""
import os
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config

from ..errors import FuseError
from .mmdeploy_compat import mmdeploy_export_compat, ort_custom_ops_library
from .tasks.detection import build_detector


def deploy_config(model_cfg: Config, opset: int = 11) -> Config:
    """mmdeploy's deploy config for an end-to-end onnxruntime detector with
    dynamic H and W; NMS settings follow the model's ``test_cfg`` (which
    mmdeploy reads first), the rest are mmdeploy's detection defaults."""
    test_cfg = model_cfg.model.get('test_cfg', {}) or {}
    # two-stage detectors keep their NMS settings under rcnn
    test_cfg = test_cfg.get('rcnn', test_cfg)
    keep = int(test_cfg.get('max_per_img', 100))
    return Config(dict(
        onnx_config=dict(
            type='onnx', export_params=True, keep_initializers_as_inputs=False,
            opset_version=opset, save_file='end2end.onnx',
            input_names=['input'], output_names=['dets', 'labels'],
            input_shape=None, optimize=False,
            dynamic_axes=dict(
                input={0: 'batch', 2: 'height', 3: 'width'},
                dets={0: 'batch', 1: 'num_dets'},
                labels={0: 'batch', 1: 'num_dets'})),
        codebase_config=dict(
            type='mmdet', task='ObjectDetection', model_type='end2end',
            post_processing=dict(
                score_threshold=float(test_cfg.get('score_thr', 0.05)),
                confidence_threshold=0.005,
                iou_threshold=float(test_cfg.get('nms', {}).get(
                    'iou_threshold', 0.5)),
                max_output_boxes_per_class=max(200, keep),
                pre_top_k=5000, keep_top_k=keep, background_label_id=-1)),
        backend_config=dict(type='onnxruntime')))


def needs_custom_ops(onnx_path: str) -> List[str]:
    """Op types of the file outside ONNX's own domains (they need mmdeploy's
    onnxruntime op library)."""
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    return sorted({n.op_type for n in model.graph.node
                   if n.domain not in ('', 'ai.onnx')})


def export_end2end(fused_cfg_path: str, fused_pth: str, image: str,
                   work_dir: str, opset: int = 11) -> Tuple[Config, str]:
    """Export the stock (fused) detector end to end with mmdeploy.

    Writes ``deploy_config.py`` and ``end2end.onnx`` into ``work_dir``.

    Args:
        fused_cfg_path (str): the stock detector's config.
        fused_pth (str): its checkpoint.
        image (str): the image mmdeploy traces the export on.
        work_dir (str): where the files go.
        opset (int): ONNX opset. Defaults to 11 (mmdeploy's).

    Returns:
        tuple[Config, str]: mmdeploy's deploy config and the ONNX path.

    Raises:
        FuseError: mmdeploy cannot export the model (one line).
    """
    from mmdeploy.apis import torch2onnx
    dcfg = deploy_config(Config.fromfile(fused_cfg_path), opset)
    dcfg.dump(os.path.join(work_dir, 'deploy_config.py'))
    onnx_path = os.path.join(work_dir, 'end2end.onnx')
    try:
        with mmdeploy_export_compat():
            torch2onnx(image, work_dir, 'end2end.onnx', dcfg, fused_cfg_path,
                       fused_pth, device='cpu')
    except Exception as err:
        raise FuseError(f'mmdeploy cannot export the model: '
                        f'{type(err).__name__}: {err}'.splitlines()[0])
    if not os.path.isfile(onnx_path):
        raise FuseError('mmdeploy wrote no end2end.onnx')
    return dcfg, onnx_path


def custom_ops_of(onnx_path: str) -> Tuple[List[str], Optional[str]]:
    """The file's custom op types and mmdeploy's onnxruntime op library that
    provides them (None when none is needed).

    Raises:
        FuseError: custom ops are needed and the library is missing.
    """
    custom = needs_custom_ops(onnx_path)
    ops_lib = ort_custom_ops_library() if custom else None
    if custom and not ops_lib:
        raise FuseError(f'the exported file needs custom ops {custom} but '
                        "mmdeploy's onnxruntime op library was not found")
    return custom, ops_lib


def load_stock_detector(fused_cfg: Config, fused_pth: str) -> torch.nn.Module:
    """The stock detector of ``fused_config.py`` + ``fused.pth``, in eval
    mode (loaded with ``weights_only=True``)."""
    stock = build_detector(fused_cfg).eval()
    stock.load_state_dict(torch.load(fused_pth, map_location='cpu',
                                     weights_only=True)['state_dict'])
    return stock
