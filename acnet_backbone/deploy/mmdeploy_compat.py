"""What mmdeploy 1.3.1 needs to export on torch >= 2.9, in one place.

mmdeploy 1.3.1 was written for torch 1.x/2.0 and its ONNX path meets two
changes of later torch releases:

1. ``torch.onnx.export`` defaults to the dynamo exporter since torch 2.9.
   mmdeploy calls it with TorchScript-exporter arguments (``dynamic_axes``,
   ``input_metas`` bound through ``functools.partial``, symbolic rewrites
   registered for the TorchScript graph): the dynamo exporter stops with
   "Detected mismatch between the structure of `inputs` and
   `dynamic_shapes`", and mmdeploy's rewriter then fails on exit with
   ``KeyError: -1``. Fix: while exporting, a call that does not choose an
   exporter gets ``dynamo=False`` (the TorchScript exporter, still shipped);
   a torch whose exporter has no ``dynamo`` argument gets nothing added.
2. mmdeploy's RoIAlign symbolic (two-stage detectors) imports
   ``_cast_Long`` from ``torch.onnx.symbolic_opset9``, which newer torch
   removed (``ImportError``). Fix: while exporting, a stand-in that emits the
   ONNX ``Cast`` to int64 the removed helper emitted.

One more is not about torch but about agreeing with mmdet:

3. mmdeploy's onnxruntime rewrite of ``RTMDetHead.predict_by_feat`` decodes
   the boxes by hand and never clips them to the image, while mmdet's
   ``DistancePointBBoxCoder`` (``clip_border=True``) clips them: a box that
   reaches past the border came out of the ONNX file as e.g. x1 = -7.75
   where torch says 0 (seen on the RTMDet-tiny shapes detectors, 34 of 100
   images). Fix: while exporting, an onnxruntime rewrite of the same
   function that decodes through the head's own ``bbox_coder`` with
   ``max_shape`` (mmdeploy's rewrite of that decode clips with dynamic
   bounds), drops the boxes that clipping made flat as mmdet does
   (``min_bbox_size``), then runs mmdeploy's ``multiclass_nms`` as before.

All three are applied only inside :func:`mmdeploy_export_compat` and undone
on exit, so nothing else in the process sees a changed ``torch.onnx`` or
mmdeploy registry.
"""
import contextlib
import functools
import inspect
from typing import Dict, Iterator

import torch

# onnx.TensorProto.INT64: the element type the removed helper cast to
_ONNX_INT64 = 7


def _cast_long(g, input, non_blocking=False):
    """Stand-in for torch's removed ``symbolic_opset9._cast_Long``."""
    return g.op('Cast', input, to_i=_ONNX_INT64)


def torchscript_export_kwargs(export=None) -> Dict[str, bool]:
    """``{'dynamo': False}`` when ``export`` (default ``torch.onnx.export``)
    has that argument, else ``{}``: older torch has only the TorchScript
    exporter and refuses the keyword."""
    export = export or torch.onnx.export
    try:
        params = inspect.signature(export).parameters
    except (TypeError, ValueError):
        return {}
    return {'dynamo': False} if 'dynamo' in params else {}


@contextlib.contextmanager
def mmdeploy_export_compat() -> Iterator[None]:
    """Make mmdeploy 1.3.1's ONNX export work on this torch, for the
    duration of the ``with`` block (see the module docstring)."""
    import torch.onnx.symbolic_opset9 as opset9
    original_export = torch.onnx.export

    choose = torchscript_export_kwargs(original_export)

    @functools.wraps(original_export)
    def export(*args, **kwargs):
        for key, value in choose.items():
            kwargs.setdefault(key, value)
        return original_export(*args, **kwargs)

    added_cast = not hasattr(opset9, '_cast_Long')
    torch.onnx.export = export
    if added_cast:
        opset9._cast_Long = _cast_long
    registry = _register_rtmdet_rewrite()
    try:
        yield
    finally:
        torch.onnx.export = original_export
        if added_cast:
            del opset9._cast_Long
        if registry is not None:
            registry.remove_record(rtmdet_predict_by_feat_clipped)


RTMDET_PREDICT = ('mmdet.models.dense_heads.rtmdet_head.RTMDetHead.'
                  'predict_by_feat')


def rtmdet_predict_by_feat_clipped(self, cls_scores, bbox_preds,
                                   batch_img_metas=None, cfg=None,
                                   rescale=False, with_nms=True):
    """mmdeploy's end-to-end ``RTMDetHead.predict_by_feat`` with the boxes
    clipped to the input as mmdet clips them (see the module docstring).

    Returns ``(dets [N, K, 5], labels [N, K])`` from mmdeploy's
    ``multiclass_nms``, or ``(boxes, scores)`` without NMS."""
    from mmdeploy.codebase.mmdet import get_post_processing_params
    from mmdeploy.core import FUNCTION_REWRITER
    from mmdeploy.mmcv.ops import multiclass_nms
    ctx = FUNCTION_REWRITER.get_context()
    cfg = self.test_cfg if cfg is None else cfg
    batch = bbox_preds[0].shape[0]
    priors = torch.cat(self.prior_generator.grid_priors(
        [score.shape[2:] for score in cls_scores],
        device=cls_scores[0].device))
    scores = torch.cat([
        score.permute(0, 2, 3, 1).reshape(batch, -1, self.cls_out_channels)
        for score in cls_scores
    ], 1).sigmoid()
    distances = torch.cat(
        [pred.permute(0, 2, 3, 1).reshape(batch, -1, 4)
         for pred in bbox_preds], 1)
    # RTMDet's points are (x, y, stride_w, stride_h): the decode takes x, y
    boxes = self.bbox_coder.decode(
        priors[None, :, :2].expand(batch, -1, -1), distances,
        max_shape=batch_img_metas[0]['img_shape'])
    if not with_nms:
        return boxes, scores
    # mmdet drops boxes no wider or taller than min_bbox_size before NMS
    # (flat boxes clipped at the border): score them 0, under any threshold
    min_size = cfg.get('min_bbox_size', -1)
    if min_size >= 0:
        keep = ((boxes[..., 2] - boxes[..., 0]) > min_size) & (
            (boxes[..., 3] - boxes[..., 1]) > min_size)
        scores = scores * keep[..., None].to(scores.dtype)
    post = get_post_processing_params(ctx.cfg)
    return multiclass_nms(
        boxes, scores, post.max_output_boxes_per_class,
        nms_type=cfg.nms.get('type'),
        iou_threshold=cfg.nms.get('iou_threshold', post.iou_threshold),
        score_threshold=cfg.get('score_thr', post.score_threshold),
        pre_top_k=post.pre_top_k,
        keep_top_k=cfg.get('max_per_img', post.keep_top_k))


def _register_rtmdet_rewrite():
    """Register :func:`rtmdet_predict_by_feat_clipped` for onnxruntime (a
    backend rewrite wins over mmdeploy's default one); returns the registry
    to remove it from, or None without mmdeploy."""
    try:
        from mmdeploy.core import FUNCTION_REWRITER
    except ImportError:
        return None
    FUNCTION_REWRITER.register_rewriter(
        func_name=RTMDET_PREDICT,
        backend='onnxruntime')(rtmdet_predict_by_feat_clipped)
    return FUNCTION_REWRITER._registry


def ort_custom_ops_library():
    """Path of mmdeploy's onnxruntime op library (``MMCVRoiAlign`` and other
    ops of two-stage detectors), or None where mmdeploy does not ship one."""
    try:
        from mmdeploy.backend.onnxruntime.init_plugins import \
            get_ops_path
    except ImportError:
        return None
    path = get_ops_path()
    return path or None
