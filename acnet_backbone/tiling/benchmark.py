"""The whole-image study: how well the tiled prediction of a trained
detector scores over a whole held-out image (against the per-tile score of
the same detector), and how fast it runs over a large image in each runtime
beside DeepForest's own ``predict_tile``, one run, one machine, the same
threads (``docs/results/whole_image.json``).

- :func:`accuracy_rows`: bbox mAP and DeepForest's recall / precision at IoU
  0.4 of the whole image (at each overlap asked for) and of its val tiles.
- :func:`speed_rows`: seconds per megapixel and crowns per second of every
  detector, interleaved over ``repeats`` with DeepForest
  (:func:`time_deepforest`: :mod:`.deepforest_peer` run by the Python of
  DeepForest's own virtualenv), with the seconds of each step.
- :func:`r50_tree_config`: the like-for-like detector, the ACResNet-50
  RetinaNet of ``configs/acnet`` with one class, read / tested on the tree
  set, for ``tools/deploy.py``; :func:`prepare_r50` writes it with random
  weights.
- :func:`run_spec`: a study from a JSON spec file (``configs/trees/
  whole_image_*.json``), the one call of ``tools/whole_image_study.py``.
"""
import json
import os
import os.path as osp
import platform
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import InputError
from .predict import predict_large, read_image
from .score import as_results, load_ground_truth, score_detections

# the keyword arguments of time_deepforest a DeepForest row may set
_PEER_ARGS = ('python', 'min_size', 'threads', 'timeout')
PEER = osp.join(osp.dirname(osp.abspath(__file__)), 'deepforest_peer.py')


def r50_tree_config(path: str, data_root: str = 'data/trees/',
                    base: str = 'configs/acnet/retinanet_acresnet50_fpn_1x_coco.py'
                    ) -> str:
    """Write the ACResNet-50 RetinaNet config of ``base`` with one class
    (``tree``) and the tree set as its train / test data (the COCO test
    pipeline kept: a 400 px patch is resized to 800 px, as DeepForest's
    torchvision RetinaNet does) to ``path``; returns ``path``."""
    if not osp.isfile(base):
        raise InputError(f'config not found: {base}')
    # relative to the written file, as mmengine resolves ``_base_``
    base = osp.relpath(osp.abspath(base), osp.dirname(osp.abspath(path)))
    root = data_root.rstrip('/') + '/'
    text = f'''# ACResNet-50 RetinaNet, one class, on the tree set: the like-for-like
# detector of the whole-image benchmark (acnet_backbone.tiling.benchmark)
_base_ = {base!r}
metainfo = dict(classes=('tree', ))
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=1))
train_dataloader = dict(dataset=dict(
    data_root={root!r}, metainfo=metainfo, ann_file='annotations/train.json',
    data_prefix=dict(img='train/')))
val_dataloader = dict(dataset=dict(
    data_root={root!r}, metainfo=metainfo, ann_file='annotations/val.json',
    data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={root + 'annotations/val.json'!r})
test_evaluator = val_evaluator
'''
    from ..staging import write_text
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_text(path, text)
    return path


#: what :func:`prepare_r50` writes
R50_FILES = ('retinanet_acresnet50_fpn_trees.py', 'random.pth')


def prepare_r50(out_dir: str, data_root: str = 'data/trees/', seed: int = 0,
                force: bool = False) -> Dict[str, str]:
    """The like-for-like detector for ``tools/deploy.py``: its config
    (:func:`r50_tree_config`) and a checkpoint with random weights, every BN
    randomised (:func:`~acnet_backbone.study.backends.
    random_detector_checkpoint`; ImageNet and DeepForest's release weights
    come from the internet), in ``out_dir``.

    Returns:
        dict: ``config`` and ``checkpoint`` paths.

    Raises:
        InputError: a file of :data:`R50_FILES` exists and ``force`` is
            False, or the folder cannot be written.
    """
    from ..staging import check_out_dir
    from ..study.backends import random_detector_checkpoint
    check_out_dir(out_dir, R50_FILES, force)
    config = r50_tree_config(osp.join(out_dir, R50_FILES[0]), data_root)
    ckpt = osp.join(out_dir, R50_FILES[1])
    tmp = ckpt + '.part'
    try:
        random_detector_checkpoint(config, tmp, seed)
        os.replace(tmp, ckpt)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return dict(config=config, checkpoint=ckpt)


def whole_image_score(detector, data_root: str, file_name: str,
                      patch: int = 400, overlap: float = 0.05,
                      batch: int = 1) -> Dict:
    """The tiled prediction of ``data_root/whole/file_name`` scored against
    all its boxes (``annotations/whole.json``), with the merge counts."""
    gt = load_ground_truth(osp.join(data_root, 'annotations', 'whole.json'),
                           [file_name])
    result = predict_large(osp.join(data_root, 'whole', file_name), detector,
                           patch, overlap, batch)
    score = score_detections(gt, as_results(
        result['dets'], result['labels'], gt['images'][0]['id']))
    return dict(score, counts=result['counts'], overlap=overlap, patch=patch,
                patches=len(result['patches']))


def tile_score(detector, data_root: str, source: str,
               split: str = 'val') -> Dict:
    """The same detector on the ``split`` tiles cut from ``source`` (each
    tile one patch, no merge), scored against the tiles' boxes (trees
    less than half inside a tile are ``iscrowd``: ignored)."""
    gt = load_ground_truth(osp.join(data_root, 'annotations',
                                    f'{split}.json'),
                           where=dict(source=source))
    results = []
    for im in gt['images']:
        img = read_image(osp.join(data_root, split, im['file_name']))
        (dets, labels), = detector([img])
        results += as_results(dets, labels, im['id'])
    return score_detections(gt, results)


def accuracy_rows(detectors: Dict[str, object], data_root: str,
                  file_name: str, overlaps: Sequence[float] = (0.05, ),
                  patch: int = 400, logger=None) -> List[Dict]:
    """Per detector (label -> :class:`~.runners.PatchDetector`): the whole
    image's score at each overlap and the per-tile score of its val
    tiles."""
    source = osp.splitext(file_name)[0]
    rows = []
    for label, det in detectors.items():
        row = dict(detector=label, description=det.description,
                   tiles=tile_score(det, data_root, source),
                   whole=[whole_image_score(det, data_root, file_name, patch,
                                            ov) for ov in overlaps])
        if logger is not None:
            logger.info(f'{label}: tiles mAP {row["tiles"]["bbox_mAP"]}, '
                        'whole ' + ', '.join(
                            f'overlap {w["overlap"]}: {w["bbox_mAP"]}'
                            for w in row['whole']))
        rows.append(row)
    return rows


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


def _load() -> List[float]:
    """The 1, 5 and 15 minute load averages of the machine."""
    return [round(x, 2) for x in os.getloadavg()]


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


def machine() -> Dict:
    """The CPU (:func:`~acnet_backbone.deploy.backends.openvino.
    cpu_capabilities`), the OpenMP settings and the Python."""
    from ..deploy.backends.openvino import cpu_capabilities
    return dict(cpu=cpu_capabilities(), python=platform.python_version(),
                omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'))


def load_detectors(specs: Sequence[Dict], threads: Optional[int] = 1
                   ) -> Dict[str, object]:
    """Patch detectors of ``specs`` (each: ``label`` and the keyword
    arguments of :func:`~.runners.load_patch_detector`: ``model_dir`` or
    ``config`` + ``checkpoint``, ``backend``, ``precision``), by label."""
    from .runners import load_patch_detector
    out = {}
    for spec in specs:
        kwargs = {k: v for k, v in spec.items() if k != 'label'}
        out[spec['label']] = load_patch_detector(threads=threads, **kwargs)
    return out


def _split_specs(specs: Sequence[Dict]):
    """``(loader specs, row extras by label)`` of study specs: the loader's
    own keys (and ``label``) apart from descriptive ones (``runtime``,
    ``network_input``, ...)."""
    keys = ('model_dir', 'config', 'checkpoint', 'backend', 'precision')
    return ([{k: v for k, v in s.items() if k in keys or k == 'label'}
             for s in specs],
            {s['label']: {k: v for k, v in s.items() if k not in keys}
             for s in specs})


def _update_json(out_file: str, section: str, value: Dict,
                 threads: int) -> Dict:
    """``out_file`` with ``section`` replaced (the other kept), the machine
    and the threads rewritten; written atomically."""
    from ..staging import write_json
    data = {}
    if osp.isfile(out_file):
        with open(out_file) as f:
            data = json.load(f)
    data.update(machine=machine(), threads=threads)
    data[section] = value
    write_json(out_file, data)
    return data


def accuracy_study(out_file: str, specs: Sequence[Dict], data_root: str,
                   held_out_image: str, patch: int = 400,
                   overlaps: Sequence[float] = (0.05, 0.25),
                   threads: int = 1, logger=None,
                   extra: Optional[Dict] = None) -> Dict:
    """The ``accuracy`` section of the results JSON ``out_file``
    (:func:`accuracy_rows` of every detector of ``specs``, loader keys as
    :func:`load_detectors`, other keys copied into the row; ``extra`` and
    the machine's load averages at the start and the end added to the
    section); the other sections of the file are kept.

    Returns:
        dict: the whole file as written.
    """
    start = _load()
    load, meta = _split_specs(specs)
    rows = accuracy_rows(load_detectors(load, threads), data_root,
                         held_out_image, overlaps, patch, logger)
    for row in rows:
        row.update(meta[row['detector']])
    return _update_json(out_file, 'accuracy', dict(
        image=held_out_image, patch=patch, overlaps=list(overlaps),
        **(extra or {}), load_average=dict(start=start, end=_load()),
        rows=rows), threads)


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

#: keys of a spec file (``configs/trees/whole_image_*.json``) per study;
#: the first ones are required
SPEC_KEYS = dict(
    accuracy=(('data_root', 'image', 'detectors'),
              ('patch', 'overlaps', 'threads', 'description')),
    speed=(('data_root', 'image', 'detectors', 'baseline'),
           ('deepforest', 'patch', 'overlap', 'repeats', 'threads',
            'description')))
#: keys of a detector entry of a spec (``label`` and a model required)
DETECTOR_KEYS = ('label', 'runtime', 'network_input', 'model_dir', 'config',
                 'checkpoint', 'backend', 'precision')
PEER_KEYS = ('label', 'runtime', 'network_input', 'python', 'min_size',
             'timeout')


def _check_entries(path: str, entries, allowed: Sequence[str],
                   what: str) -> None:
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) for e in entries):
        raise InputError(f'{path}: `{what}` must be a list of objects')
    labels = [e.get('label') for e in entries]
    for e, label in zip(entries, labels):
        bad = sorted(set(e) - set(allowed))
        if bad or not isinstance(label, str):
            raise InputError(f'{path}: a `{what}` entry ({label}) '
                             + (f'has unknown keys {bad}' if bad
                                else 'has no `label`'))
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise InputError(f'{path}: `{what}` labels repeat: {sorted(dup)[0]}')


def read_spec(path: str, study: str) -> Dict:
    """A study spec file: JSON with the keys of :data:`SPEC_KEYS`;
    ``detectors`` a list of :data:`DETECTOR_KEYS` entries (``model_dir``
    with ``backend`` / ``precision``, or ``config`` + ``checkpoint`` for
    torch), ``deepforest`` a list of :data:`PEER_KEYS` entries (``python``
    of DeepForest's own virtualenv, optional ``min_size``). Paths are
    relative to the working folder (the repository root).

    Raises:
        InputError: a missing or unreadable file, a missing or unknown key,
            a repeated label, a detector without a model.
    """
    if study not in SPEC_KEYS:
        raise InputError(f'unknown study {study!r}: one of '
                         f'{", ".join(SPEC_KEYS)}')
    try:
        with open(path, encoding='utf-8') as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise InputError(f'spec file not found: {path}') from None
    except (OSError, ValueError) as err:
        raise InputError(f'cannot read spec {path}: {err}') from None
    required, optional = SPEC_KEYS[study]
    if not isinstance(spec, dict):
        raise InputError(f'{path}: not a JSON object')
    missing = [k for k in required if k not in spec]
    unknown = sorted(set(spec) - set(required) - set(optional))
    if missing or unknown:
        raise InputError(f'{path}: ' + (f'no `{missing[0]}`' if missing
                         else f'unknown key `{unknown[0]}` for {study}'))
    _check_entries(path, spec['detectors'], DETECTOR_KEYS, 'detectors')
    for d in spec['detectors']:
        if not d.get('model_dir') and not (d.get('config')
                                           and d.get('checkpoint')):
            raise InputError(f'{path}: {d["label"]}: give `model_dir` or '
                             '`config` and `checkpoint`')
    _check_entries(path, spec.get('deepforest', []), PEER_KEYS, 'deepforest')
    return spec


def run_spec(study: str, spec_file: str, out_file: str,
             deepforest_python: Optional[str] = None,
             note: Optional[str] = None, logger=None) -> Dict:
    """Run the ``accuracy`` or ``speed`` study of the spec file
    ``spec_file`` (:func:`read_spec`) into its section of ``out_file``
    (:func:`accuracy_study`, :func:`speed_study`); the section records the
    spec file and ``note`` (e.g. what else ran on the machine).

    Args:
        deepforest_python (str, optional): the Python of DeepForest's
            virtualenv for every DeepForest row, instead of the spec's.

    Returns:
        dict: the section as written.
    """
    spec = read_spec(spec_file, study)
    extra = dict(spec_file=spec_file, note=note,
                 description=spec.get('description'))
    common = dict(data_root=spec['data_root'], patch=spec.get('patch', 400),
                  threads=spec.get('threads', 1), logger=logger,
                  extra={k: v for k, v in extra.items() if v})
    if study == 'accuracy':
        data = accuracy_study(out_file, spec['detectors'],
                              held_out_image=spec['image'],
                              overlaps=spec.get('overlaps', (0.05, )),
                              **common)
    else:
        peers = [dict(p, threads=common['threads'], **(
            dict(python=deepforest_python) if deepforest_python else {}))
            for p in spec.get('deepforest', [])]
        data = speed_study(out_file, spec['detectors'],
                           timing_image=spec['image'], deepforest=peers,
                           overlap=spec.get('overlap', 0.05),
                           repeats=spec.get('repeats', 1),
                           baseline=spec['baseline'], **common)
    return data[study]
