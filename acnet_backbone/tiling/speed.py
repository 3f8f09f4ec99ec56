"""The speed half of the whole-image study: how fast the tiled prediction
runs over a large image in each runtime beside DeepForest's own
``predict_tile``, one run, one machine, the same threads, the ``speed``
section of ``docs/results/whole_image.json``.

- :func:`speed_rows`: seconds per megapixel and crowns per second of every
  detector, interleaved over ``repeats`` with DeepForest
  (:func:`time_deepforest`: :mod:`.deepforest_peer` run by the Python of
  DeepForest's own virtualenv), with the seconds of each step.
- :func:`speed_study`: those rows of a spec's detectors and DeepForest
  rows, with :func:`speedups` over a baseline, written into the results
  JSON.
"""
import json
import os
import os.path as osp
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from .predict import predict_large, read_image
from .results import _load, _split_specs, _update_json, load_detectors
from .score import load_ground_truth

# the keyword arguments of time_deepforest a DeepForest row may set
_PEER_ARGS = ('python', 'min_size', 'threads', 'timeout')
PEER = osp.join(osp.dirname(osp.abspath(__file__)), 'deepforest_peer.py')


def time_deepforest(python: str, image: str, patch: int = 400,
                    overlap: float = 0.05, threads: int = 1,
                    repeats: int = 1, min_size: Optional[int] = None,
                    timeout: float = 3600) -> Dict:
    """DeepForest's ``predict_tile`` on ``image``, timed by
    :mod:`.deepforest_peer` under ``python`` (DeepForest's own virtualenv),
    with ``OMP_NUM_THREADS=threads`` and a passive OpenMP wait policy.

    Raises:
        InputError: ``python`` is missing or the run fails (its last
            error line).
    """
    if not osp.isfile(python):
        raise InputError(f'DeepForest python not found: {python} (install '
                         'deepforest==2.1.0 into its own virtualenv)')
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               OMP_WAIT_POLICY='PASSIVE', MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'deepforest.json')
        cmd = [python, '-I', PEER, '--image', osp.abspath(image), '--out',
               out, '--patch', str(patch), '--overlap', str(overlap),
               '--threads', str(threads), '--repeats', str(repeats)]
        if min_size is not None:
            cmd += ['--min-size', str(min_size)]
        run = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True,
                             text=True, timeout=timeout)
        if run.returncode or not osp.isfile(out):
            last = (run.stderr.strip().splitlines() or ['no output'])[-1]
            raise InputError(f'the DeepForest run failed: {last}')
        with open(out) as f:
            return json.load(f)


def _row(label: str, seconds: float, mpx: float, crowns: int,
         cpu_seconds: Optional[float] = None, **extra) -> Dict:
    cpu = {} if cpu_seconds is None else dict(
        cpu_seconds=round(cpu_seconds, 3),
        cpu_s_per_megapixel=round(cpu_seconds / mpx, 3))
    return dict(detector=label, seconds=round(seconds, 3),
                s_per_megapixel=round(seconds / mpx, 3),
                crowns_per_s=round(crowns / seconds, 2), **cpu, **extra)


def speed_rows(detectors: Dict[str, object], image: str, crowns: int,
               deepforest: Optional[Dict] = None, patch: int = 400,
               overlap: float = 0.05, batch: int = 1, repeats: int = 1,
               logger=None) -> List[Dict]:
    """Seconds over ``image`` of every detector (label -> patch detector)
    and of DeepForest, interleaved: each repeat runs every detector once,
    then DeepForest; each detector first runs one patch as a warm-up. A
    row's seconds are the median over the repeats; ``crowns_per_s`` is the
    image's annotated crowns (``crowns``) over them.

    Args:
        deepforest (dict, optional): keyword arguments of
            :func:`time_deepforest` (``python`` at least, ``min_size``), or
            a list of such dicts for several DeepForest rows (each with a
            ``label``); None: no DeepForest row.

    Returns:
        list[dict]: per row ``detector``, ``seconds``, ``s_per_megapixel``,
        ``crowns_per_s``, ``cpu_seconds``, ``cpu_s_per_megapixel``,
        ``detections``, ``patches``, ``profile`` (median seconds per step),
        ``load_average`` (one per repeat) and ``description`` (what
        ran).
    """
    img = read_image(image)
    mpx = img.shape[0] * img.shape[1] / 1e6
    peers = deepforest if isinstance(deepforest, list) else (
        [] if deepforest is None else [dict(deepforest)])
    for det in detectors.values():
        det([np.ascontiguousarray(img[:patch, :patch])])  # warm-up
    runs = {label: [] for label in detectors}
    cpu = {label: [] for label in list(detectors) + [
        p.get('label', 'DeepForest') for p in peers]}
    load = {label: [] for label in cpu}
    peer_runs = {p.get('label', 'DeepForest'): [] for p in peers}
    peer_meta = {p.get('label', 'DeepForest'): {
        k: v for k, v in p.items() if k not in _PEER_ARGS + ('label', )}
        for p in peers}
    for r in range(repeats):
        for label, det in detectors.items():
            load[label].append(_load()[0])
            c0 = time.process_time()
            result = predict_large(image, det, patch, overlap, batch)
            cpu[label].append(time.process_time() - c0)
            runs[label].append(result)
            if logger is not None:
                logger.info(f'repeat {r}: {label} '
                            f'{result["seconds"]["total"]:.1f} s')
        for p in peers:
            kwargs = {k: v for k, v in p.items() if k in _PEER_ARGS}
            name = p.get('label', 'DeepForest')
            load[name].append(_load()[0])
            got = time_deepforest(image=image, patch=patch, overlap=overlap,
                                  **kwargs)
            peer_runs[name].append(got)
            if got.get('cpu_seconds'):
                cpu[name].append(got['cpu_seconds'][0])
            if logger is not None:
                logger.info(f'repeat {r}: DeepForest {got["seconds"][0]:.1f}'
                            ' s')
    return (_detector_rows(runs, detectors, mpx, crowns, cpu, load) +
            _peer_rows(peer_runs, peer_meta, mpx, crowns, cpu, load))


def _detector_rows(runs: Dict, detectors: Dict, mpx: float, crowns: int,
                   cpu: Dict, load: Dict) -> List[Dict]:
    """:func:`speed_rows`' row of each patch detector: the median step
    profile over the repeats."""
    rows = []
    for label, results in runs.items():
        steps = results[0]['seconds'].keys()
        profile = {k: round(float(np.median([x['seconds'][k]
                                             for x in results])), 3)
                   for k in steps}
        rows.append(_row(label, profile['total'], mpx, crowns,
                         float(np.median(cpu[label])),
                         load_average=load[label],
                         detections=int(len(results[-1]['dets'])),
                         patches=len(results[-1]['patches']),
                         profile=profile,
                         description=detectors[label].description))
    return rows


def _peer_rows(peer_runs: Dict, peer_meta: Dict, mpx: float, crowns: int,
               cpu: Dict, load: Dict) -> List[Dict]:
    """:func:`speed_rows`' row of each DeepForest run: median seconds and
    network seconds over the repeats."""
    rows = []
    for label, got in peer_runs.items():
        seconds = float(np.median([g['seconds'][0] for g in got]))
        network = float(np.median([g['network_seconds'] for g in got]))
        rows.append(_row(label, seconds, mpx, crowns,
                         float(np.median(cpu[label])) if cpu[label]
                         else None, load_average=load[label],
                         detections=got[-1]['detections'],
                         patches=got[-1]['network_calls'],
                         profile=dict(network=round(network, 3),
                                      total=round(seconds, 3)),
                         description={k: v for k, v in got[-1].items()
                                      if k not in ('seconds', 'cpu_seconds')},
                         **{k: v for k, v in peer_meta[label].items()}))
    return rows


def speedups(rows: List[Dict], baseline: str) -> None:
    """Add ``speedup_vs_baseline`` (baseline seconds over the row's) and,
    where both have CPU seconds, ``cpu_speedup_vs_baseline`` to every row,
    in place."""
    base = next((r for r in rows if r['detector'] == baseline), None)
    if base is None:
        raise InputError(f'no row {baseline!r} to compare with')
    for r in rows:
        r['speedup_vs_baseline'] = round(base['seconds'] / r['seconds'], 2)
        if base.get('cpu_seconds') and r.get('cpu_seconds'):
            r['cpu_speedup_vs_baseline'] = round(
                base['cpu_seconds'] / r['cpu_seconds'], 2)


def speed_study(out_file: str, specs: Sequence[Dict], data_root: str,
                timing_image: str, deepforest: Optional[Sequence[Dict]] =
                None, patch: int = 400, overlap: float = 0.05,
                repeats: int = 1, threads: int = 1,
                baseline: str = 'DeepForest', logger=None,
                extra: Optional[Dict] = None) -> Dict:
    """The ``speed`` section of the results JSON ``out_file``
    (:func:`speed_rows` of every detector of ``specs`` and each DeepForest
    row of ``deepforest``, :func:`time_deepforest` arguments plus
    ``label`` and descriptive keys, with :func:`speedups` over
    ``baseline``; ``extra`` and the machine's load averages at the start
    and the end added to the section); the other sections of the file are
    kept. ``crowns`` are the annotated boxes of ``timing_image`` in
    ``annotations/whole.json``.

    Returns:
        dict: the whole file as written.
    """
    start = _load()
    gt = load_ground_truth(osp.join(data_root, 'annotations', 'whole.json'),
                           [timing_image])
    crowns = len(gt['annotations'])
    load, meta = _split_specs(specs)
    rows = speed_rows(load_detectors(load, threads),
                      osp.join(data_root, 'whole', timing_image), crowns,
                      list(deepforest or []), patch, overlap, 1, repeats,
                      logger)
    for row in rows:
        row.update(meta.get(row['detector'], {}))
    speedups(rows, baseline)
    im = gt['images'][0]
    return _update_json(out_file, 'speed', dict(
        image=timing_image, width=im['width'], height=im['height'],
        megapixels=round(im['width'] * im['height'] / 1e6, 4),
        crowns=crowns, patch=patch, overlap=overlap, repeats=repeats,
        baseline=baseline, order=SPEED_ORDER, **(extra or {}),
        load_average=dict(start=start, end=_load()), rows=rows), threads)


#: how :func:`speed_rows` orders the runs (written into the JSON)
SPEED_ORDER = ('interleaved: each repeat runs every detector once in turn '
               '(one warm-up patch each first), then each DeepForest row in '
               'its own subprocess')
