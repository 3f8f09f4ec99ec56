"""Run: the torch detector and every backend session on the same
preprocessed inputs, interleaved image by image (a fair latency
comparison), and the sessions a deployment opens (:mod:`.backends`)."""
import time
from typing import Dict, Optional, Sequence

from mmengine.config import Config

from .backends import REFERENCE, backend_for
from .detections import torch_detections
from .tasks.detection import preprocess


def open_sessions(files: Dict[str, str], backend: str,
                  precisions: Sequence[str], threads: Optional[int],
                  custom_ops: Optional[str] = None, logger=None) -> Dict:
    """The sessions of a deployment: the reference runtime's (onnxruntime)
    for every end-to-end file of ``files`` (``onnx``, and ``onnx_int8``
    when there), then, for another ``backend``, its session of each of
    ``precisions``.

    Returns:
        dict: session name (:meth:`~.backends.DeployBackend.session_name`)
        -> session, the reference's first.
    """
    reference = backend_for(REFERENCE)
    sessions = reference.sessions(
        files, [p for p in reference.precisions
                if reference.file_key(p) in files], threads, None, custom_ops)
    if backend != REFERENCE:
        sessions.update(backend_for(backend).sessions(
            files, precisions, threads, logger, custom_ops))
    return sessions


def run_side_by_side(stock, cfg: Config, images: Sequence[str],
                     sessions: Dict[str, object]) -> Dict:
    """Run the torch detector and every session on each image,
    interleaved on the same preprocessed input (fair latency comparison).

    Args:
        stock: the torch detector (eval mode).
        cfg (Config): its config (test pipeline).
        images (Sequence[str]): image files; each entry is one timed run.
        sessions (dict): name -> session of an end-to-end file (any
            backend: :func:`open_sessions`).

    Returns:
        dict: ``torch`` (list of ``(dets, labels)``), one such list per
        session name, ``seconds`` (name -> per-image seconds, ``torch``
        included) and ``input_shape`` (of the last input).
    """
    run = dict(torch=[], **{name: [] for name in sessions})
    seconds = {name: [] for name in run}
    for path in images:
        inputs, samples = preprocess(cfg, stock, path)
        t0 = time.perf_counter()
        run['torch'].append(torch_detections(stock, inputs, samples))
        seconds['torch'].append(time.perf_counter() - t0)
        for name, session in sessions.items():
            t0 = time.perf_counter()
            dets, labels = session.run(['dets', 'labels'],
                                       {'input': inputs.numpy()})
            seconds[name].append(time.perf_counter() - t0)
            run[name].append((dets[0], labels[0]))
    run['seconds'] = seconds
    run['input_shape'] = list(inputs.shape)
    return run
