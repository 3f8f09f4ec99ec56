"""The options of an end-to-end deployment (:class:`DeployOptions`), and
how they are checked and resolved against the backends before any work."""
import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import FuseError
from .backends import all_backends, backend_for

DEPLOY_OUTPUTS = ('end2end.onnx', 'deploy_config.py', 'fused.pth',
                  'fused_config.py', 'deploy_report.json')
INT8_OUTPUT = 'end2end_int8.onnx'


@dataclasses.dataclass
class DeployOptions:
    """How :func:`deploy` checks, what it measures and writes.

    Args:
        evaluate (bool): bbox mAP of torch and ONNX (and INT8) on the test
            set. Defaults to False.
        shape (tuple[int, int], optional): H, W of the random fusion check
            input; None: the first check image through the test pipeline.
        num_images (int): test images for the onnxruntime-vs-torch check and
            the latency. Defaults to 20.
        rtol (float): fusion tolerance. Defaults to 1e-4.
        opset (int): ONNX opset of ``end2end.onnx``. Defaults to 11
            (mmdeploy's); the INT8 file is converted to
            :data:`~acnet_backbone.deploy.quantize.INT8_OPSET`.
        force (bool): overwrite existing outputs. Defaults to False.
        logger: an ``MMLogger``; None: the current one.
        images (list[str], optional): image files for the check and the
            latency instead of the test set's first ``num_images`` (a file
            may repeat: each entry is one timed run). Defaults to None.
        int8 (bool): also write ``end2end_int8.onnx``
            (:func:`~acnet_backbone.deploy.quantize.quantize_end2end`).
            Defaults to False.
        calib_images (int | list[str]): the number of training images
            (evenly spread over the training set, through the test pipeline)
            that calibrate the INT8 activations, or the image files.
            Defaults to 64.
        int8_options (dict, optional): keyword arguments of
            ``quantize_end2end`` (``scope``, ``activations``, ``method``).
        threads (int, optional): onnxruntime intra-op threads of the check
            and latency sessions (OpenVINO's too); None: the runtime's choice.
        backend (str): a registered backend (:mod:`.backends`:
            ``'onnxruntime'``, ``'openvino'``): another than onnxruntime
            also runs the end-to-end files, checked against torch, timed
            and (``evaluate``) evaluated beside onnxruntime. Defaults to
            ``'onnxruntime'``.
        precisions (list[str], optional): ``fp32``/``bf16``/``int8``; int8
            implies ``int8``; None: onnxruntime fp32, another backend every
            precision the CPU runs natively. Defaults to None.
        save_ir (bool): also write the files in the backend's own format
            (OpenVINO IR: ``end2end.xml``/``.bin``,
            ``end2end_int8.xml``/``.bin``). Defaults to False.
    """
    evaluate: bool = False
    shape: Optional[Tuple[int, int]] = None
    num_images: int = 20
    rtol: float = 1e-4
    opset: int = 11
    force: bool = False
    logger: Any = None
    images: Optional[Sequence[str]] = None
    int8: bool = False
    calib_images: Union[int, Sequence[str]] = 64
    int8_options: Optional[Dict] = None
    threads: Optional[int] = None
    backend: str = 'onnxruntime'
    precisions: Optional[Sequence[str]] = None
    save_ir: bool = False


def check_sizes(shape: Optional[Tuple[int, int]], num_images: int,
                threads: Optional[int]) -> None:
    """Refuse a check input under 32x32 and counts under 1 (one line)."""
    if shape and min(shape) < 32:
        raise FuseError(f'`shape` {shape[0]} {shape[1]} is too small (at '
                        'least 32 32)')
    for name, value in (('num_images', num_images), ('threads', threads)):
        if value is not None and value < 1:
            raise FuseError(f'`{name}` must be at least 1')


def resolve_options(opts: DeployOptions) -> DeployOptions:
    """``opts`` with the backend plan applied (:func:`.backends.plan_backend`):
    ``int8`` on when an INT8 precision is asked for, ``precisions`` those
    the chosen backend runs beside onnxruntime. Call it before any work:
    it raises on every bad combination.

    Raises:
        FuseError: see :func:`.backends.plan_backend`; ``save_ir`` with a
            backend that has no file format of its own.
    """
    backend = backend_for(opts.backend)
    if opts.save_ir and not backend.native_format:
        formats = [b for b in all_backends() if b.native_format]
        raise FuseError('`save_ir` (' + ', '.join(
            f'{b.display} {b.native_format}' for b in formats) +
            ') needs `backend` ' + ' or '.join(b.name for b in formats))
    plan = backend.plan(opts.precisions, opts.int8)
    return dataclasses.replace(opts, int8=plan['int8'],
                               precisions=plan['precisions'] or None)


def native_output_names(opts: DeployOptions) -> List[str]:
    """The files ``save_ir`` adds for resolved ``opts`` (the backend's own
    format of each end-to-end file)."""
    if not opts.save_ir:
        return []
    return backend_for(opts.backend).native_files(
        list(DEPLOY_OUTPUTS[:1]) + ([INT8_OUTPUT] if opts.int8 else []))
