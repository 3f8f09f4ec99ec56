"""Report: the markdown table ``tools/deploy.py`` prints for a deploy
report (checks, latency and, when evaluated, the mAP of torch and every
deployed file side by side), each backend adding its own rows."""
import os
from typing import Dict, List, Tuple

from ..tables import markdown_table
from .backends import all_backends, session_labels


def _fmt(value, spec: str = '.3g') -> str:
    return 'n/a' if value is None else format(value, spec)


def _int8_rows(q: Dict) -> List[Tuple[str, str]]:
    images = 'training images' if q.get('calib_source', '').startswith(
        'training') else 'given images'
    return [('INT8', f'{q["scope"]}, weights {q["weights"]}, activations '
             f'{q["activations"]}, {q["calibrate_method"]} on '
             f'{q["calib_images"]} {images}, opset {q["opset"]}'),
            (f'INT8 vs ONNX, detections found (IoU >= '
             f'{q["vs_fp32"]["iou_thr"]})', _fmt(q['vs_fp32']['matched'],
                                                 '.1%'))] + (
        [('INT8 weight range', q['weight_range_reason'])]
        if q.get('weight_range_reason') else [])


def summary_lines(report: Dict) -> List[str]:
    """The markdown table of a :func:`deploy_checkpoint` report (checks,
    latency and, when evaluated, mAP of torch, the FP32 file and the INT8
    file side by side), as ``tools/deploy.py`` prints it."""
    check, lat = report['check'], report['latency_ms']
    rows = [('fused vs trained, max rel err',
             f'{report["fuse_max_rel_err"]:.3g}'),
            ('ONNX vs torch, images / detections',
             f'{check["images"]} / {check["detections"]}'),
            ('ONNX vs torch, max box err (px)', _fmt(check['max_box_err_px'])),
            ('ONNX vs torch, max score err', _fmt(check['max_score_err']))]
    if check['mismatched_images']:
        rows.append(('ONNX vs torch, images that differ', ', '.join(
            os.path.basename(d['image']) for d in check['differing_images'])))
    labels = dict(torch='torch', **session_labels())
    names = [n for n in labels if n in lat]
    head = ' / '.join(labels[n] for n in names)
    shape = 'x'.join(map(str, lat['input_shape'][-2:]))
    rows.append((f'median latency {head} (ms, {shape})',
                 ' / '.join(f'{lat[n]:.1f}' for n in names)))
    for key in ('bbox_mAP', 'bbox_mAP_50') if 'eval' in report else ():
        rows.append((f'{key} {head}', ' / '.join(
            f'{report["eval"][n][key]:.3f}' for n in names)))
    if 'int8' in report:
        rows += _int8_rows(report['int8'])
    for backend in all_backends():  # each backend's own section
        if backend.name in report:
            rows += backend.summary_rows(report[backend.name])
    custom = report['onnx']['custom_ops']
    rows.append(('custom ops needed', ', '.join(custom) + ' (mmdeploy '
                 'onnxruntime op library)' if custom else 'none'))
    return markdown_table(['check', 'value'], rows)
