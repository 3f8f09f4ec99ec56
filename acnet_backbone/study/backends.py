"""Runtime and precision study of deployed detectors: bbox mAP and latency
of torch, onnxruntime (FP32, INT8) and OpenVINO (FP32, BF16, INT8) on the
same end-to-end files, over many trained detectors (:func:`backend_study`),
and the latency of a large detector at full resolution
(:func:`large_detector_latency`).

Every number comes from one :func:`~acnet_backbone.deploy.end2end.
deploy_checkpoint` call per detector (``backend='openvino'``), so torch and
each runtime/precision are timed interleaved on the same inputs.
"""
import json
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import InputError

# the report names of every runtime/precision, in table order
RUNTIMES = ('torch', 'onnx', 'onnx_int8', 'openvino_fp32', 'openvino_bf16',
            'openvino_int8')
LABELS = dict(torch='torch', onnx='ORT FP32', onnx_int8='ORT INT8',
              openvino_fp32='OV FP32', openvino_bf16='OV BF16',
              openvino_int8='OV INT8')
STUDY_FILE = 'backend_study.json'


def runs_from_study(path: str,
                    names: Optional[Sequence[str]] = None) -> List[Dict]:
    """The runs of a study JSON (``compare.json`` / ``journey.json``
    written by :func:`~acnet_backbone.study.run_study`) as study inputs:
    ``config`` (the run's own ``config.py`` beside its checkpoint when it
    exists, which carries its options, else ``config_path``),
    ``checkpoint``, ``seed`` and ``name`` (the study's config name).

    Args:
        path (str): the study JSON.
        names (list[str], optional): keep only the runs of these config
            names (e.g. ``retinanet_fcnresnet18_fpn_shapes-ft``), in this
            order; None: every run.

    Raises:
        InputError: the file is missing, not a study, has no checkpoint, or
            has no run of a name asked for.
    """
    if not osp.isfile(path):
        raise InputError(f'study file not found: {path}')
    try:
        with open(path) as f:
            rows = json.load(f)['runs']
    except (ValueError, KeyError, TypeError):
        raise InputError(f'{path} is not a study JSON (no "runs")') from None
    runs = []
    for row in rows:
        ckpt = row.get('checkpoint')
        if not ckpt:
            raise InputError(f'{path}: run {row.get("config")} seed '
                             f'{row.get("seed")} has no checkpoint')
        own = osp.join(osp.dirname(ckpt), 'config.py')
        runs.append(dict(
            config=own if osp.isfile(own) else row.get('config_path',
                                                       row['config']),
            checkpoint=ckpt, seed=row.get('seed'),
            name=osp.splitext(osp.basename(str(row['config'])))[0]))
    if names is None:
        return runs
    have = list(dict.fromkeys(r['name'] for r in runs))
    missing = [n for n in names if n not in have]
    if missing:
        raise InputError(f'{path} has no run of {missing[0]} (it has '
                         f'{", ".join(have)})')
    return [r for n in names for r in runs if r['name'] == n]


def _as_runs(runs: Union[str, Sequence],
             names: Optional[Sequence[str]] = None) -> List[Dict]:
    if isinstance(runs, str):
        return runs_from_study(runs, names)
    if names is not None:
        raise InputError('`names` selects runs of a study JSON; give the '
                         'CONFIG CHECKPOINT pairs wanted instead')
    out = []
    for run in runs:
        run = dict(run) if isinstance(run, dict) else dict(
            config=run[0], checkpoint=run[1])
        run.setdefault('name', osp.splitext(osp.basename(run['config']))[0])
        out.append(run)
    return out


def study_row(run: Dict, report: Dict) -> Dict:
    """One run's row: per runtime/precision its bbox mAP, its drop against
    torch, its median latency and its speed-up over onnxruntime FP32."""
    row = dict(run)
    lat, ev = report.get('latency_ms', {}), report.get('eval', {})
    for name in RUNTIMES:
        if name in ev:
            row[f'{name}_bbox_mAP'] = ev[name]['bbox_mAP']
            if name != 'torch' and 'torch' in ev:
                row[f'{name}_drop'] = round(
                    ev['torch']['bbox_mAP'] - ev[name]['bbox_mAP'], 4)
        if name in lat:
            row[f'{name}_ms'] = lat[name]
            if lat.get('onnx'):
                row[f'{name}_speedup'] = round(lat['onnx'] / lat[name], 3)
    ov = report.get('openvino', {})
    row['ran'] = {p: v['compiled'] for p, v in ov.get('precisions',
                                                       {}).items()}
    return row


def summarise_backends(rows: Sequence[Dict]) -> List[Dict]:
    """Per config name and runtime/precision: n, mean bbox mAP, mean drop
    against torch with its 95% Student-t interval over the runs, and the
    median latency and speed-up over onnxruntime FP32."""
    from .report import mean_std, t_interval
    summary = []
    for name in dict.fromkeys(r['name'] for r in rows):
        group = [r for r in rows if r['name'] == name]
        for rt in RUNTIMES:
            have = [r for r in group if f'{rt}_bbox_mAP' in r or
                    f'{rt}_ms' in r]
            if not have:
                continue
            maps = [r[f'{rt}_bbox_mAP'] for r in have
                    if f'{rt}_bbox_mAP' in r]
            drops = [r[f'{rt}_drop'] for r in have if f'{rt}_drop' in r]
            ms = [r[f'{rt}_ms'] for r in have if f'{rt}_ms' in r]
            speed = [r[f'{rt}_speedup'] for r in have
                     if f'{rt}_speedup' in r]
            summary.append(dict(
                name=name, runtime=rt, label=LABELS[rt], n=len(have),
                bbox_mAP_mean=mean_std(maps)[0], drop_mean=mean_std(drops)[0],
                drop_ci95=t_interval(drops),
                latency_ms_median=float(np.median(ms)) if ms else None,
                speedup_median=float(np.median(speed)) if speed else None))
    return summary


def drop_differences(rows: Sequence[Dict]) -> List[Dict]:
    """Per runtime/precision, each config's drop against torch minus the
    first config's, paired by seed (is ACB's deployment no worse than
    plain's?): ``n``, mean, 95% Student-t interval and the per-seed values.
    Empty when there is one config or no seeds to pair."""
    from .report import paired_difference
    names = list(dict.fromkeys(r['name'] for r in rows))

    def drops(name, key):
        return {r['seed']: r[key] for r in rows if r['name'] == name
                and key in r and r.get('seed') is not None}

    out = []
    for name in names[1:]:
        for rt in RUNTIMES[1:]:
            d = paired_difference(drops(name, f'{rt}_drop'),
                                  drops(names[0], f'{rt}_drop'))
            if d is not None:
                d.pop('std')
                out.append(dict(name=name, baseline=names[0], runtime=rt,
                                label=LABELS[rt], **d))
    return out


def _finished(path: str, precisions: Sequence[str]) -> Optional[Dict]:
    """A finished deploy report with every OpenVINO precision, or None."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        report = json.load(f)
    want = {f'openvino_{p}' for p in precisions}
    return report if want <= set(report.get('eval', {})) else None


def backend_study(runs: Union[str, Sequence[Union[tuple, Dict]]],
                  work_dir: str,
                  precisions: Optional[Sequence[str]] = None,
                  calib_images: int = 64,
                  num_images: int = 20,
                  threads: Optional[int] = 1,
                  force: bool = False,
                  logger=None,
                  names: Optional[Sequence[str]] = None) -> Dict:
    """bbox mAP and latency of torch, onnxruntime FP32/INT8 and OpenVINO at
    each precision, over many trained detectors.

    Each run is deployed with ``deploy_checkpoint(..., evaluate=True,
    backend='openvino', precisions=...)`` into
    ``work_dir/<name>_seed<S>`` (``<NN>_<name>`` without a seed); a run
    whose report already has every precision is read back (unless
    ``force``), so an interrupted study resumes.

    Example:
        >>> backend_study('work_dirs/journey/finetune/compare.json',
        ...               'work_dirs/backend_study')['summary'][0]

    Args:
        runs (str | list): a study JSON (:func:`runs_from_study`), or
            ``(config, checkpoint)`` pairs / dicts with those keys and
            optionally ``seed`` and ``name`` (the summary groups by name).
        work_dir (str): the study folder; ``backend_study.json`` goes there.
        precisions (list[str], optional): OpenVINO precisions; None: every
            precision the CPU runs natively.
        calib_images (int): training images calibrating INT8. Defaults
            to 64.
        num_images (int): test images of the check and the latency.
            Defaults to 20.
        threads (int, optional): threads of every runtime. Defaults to 1.
        force (bool): redo runs that have a report. Defaults to False.
        logger: an ``MMLogger``; None: the current one.
        names (list[str], optional): with a study JSON, only the runs of
            these config names (:func:`runs_from_study`).

    Returns:
        dict: ``runs`` (one row per run, :func:`study_row`), ``summary``
        (:func:`summarise_backends`), ``differences``
        (:func:`drop_differences`), ``cpu`` and ``threads``; also written
        to ``work_dir/backend_study.json``.
    """
    from ..deploy.backends import plan_backend
    from ..deploy.end2end import deploy_checkpoint
    from ..staging import write_json
    runs = _as_runs(runs, names)
    plan = plan_backend('openvino', precisions, True)
    rows = []
    for i, run in enumerate(runs):
        # a run of a study is named by config and seed (stable when seeds
        # are added); a bare CONFIG CHECKPOINT pair by its place in the list
        label = f'{run["name"]}_seed{run["seed"]}' if run.get(
            'seed') is not None else f'{i:02d}_{run["name"]}'
        out_dir = osp.join(work_dir, label)
        report = None if force else _finished(
            osp.join(out_dir, 'deploy_report.json'), plan['precisions'])
        if report is None:
            report = deploy_checkpoint(
                run['config'], run['checkpoint'], out_dir, evaluate=True,
                num_images=num_images, force=True, logger=logger, int8=True,
                calib_images=calib_images, threads=threads,
                backend='openvino', precisions=plan['precisions'])
        rows.append(dict(study_row(run, report), out_dir=out_dir))
    result = dict(runs=rows, summary=summarise_backends(rows),
                  differences=drop_differences(rows), cpu=plan['cpu'],
                  threads=threads)
    os.makedirs(work_dir, exist_ok=True)
    write_json(osp.join(work_dir, STUDY_FILE), result)
    return result


def layer_errors(onnx_path: str, inputs: Sequence[np.ndarray],
                 precision: str = 'bf16', threads: Optional[int] = 1,
                 reference: Optional[str] = None,
                 op_types: Sequence[str] = ('Conv', )) -> List[Dict]:
    """Where a precision loses accuracy: the relative error of every
    ``op_types`` output of an end-to-end file compiled in ``precision``
    against the reference file compiled in fp32, on ``inputs``.

    BF16: ``layer_errors('end2end.onnx', xs, 'bf16')``; INT8:
    ``layer_errors('end2end_int8.onnx', xs, 'fp32',
    reference='end2end.onnx')`` (the QDQ file keeps the tensor names). Each
    compared tensor is made a model output in both compiled models, which
    can change OpenVINO's fusions a little: use it to rank layers; the
    deployed model's error is the deploy check's.

    Args:
        onnx_path (str): the file whose precision is examined.
        inputs (list[np.ndarray]): preprocessed ``[1, 3, H, W]`` inputs.
        precision (str): ``'bf16'`` or ``'fp32'``. Defaults to ``'bf16'``.
        threads (int, optional): OpenVINO threads. Defaults to 1.
        reference (str, optional): the fp32 reference file; None:
            ``onnx_path``.
        op_types (list[str]): ONNX op types whose outputs are compared.
            Defaults to ``('Conv', )``.

    Returns:
        list[dict]: one row per tensor in graph order: ``tensor``, ``op``,
        ``rel_err`` (max |a - b| / max |a| over the inputs, a the
        reference) and ``mean_rel_err`` (mean |a - b| / mean |a|).
    """
    import onnx

    from ..deploy.backends.openvino import openvino_core
    reference = reference or onnx_path

    def tensors(path):
        graph = onnx.load(path, load_external_data=False).graph
        return [(n.output[0], n.op_type) for n in graph.node
                if n.op_type in op_types]

    theirs = {t for t, _ in tensors(onnx_path)}
    names = [(t, op) for t, op in tensors(reference) if t in theirs]
    compiled = []
    for path, hint in ((reference, 'f32'), (onnx_path, 'f32' if precision ==
                                             'fp32' else precision)):
        # the process's one Core (a Core per model crashes the process
        # later, see openvino_core)
        model = openvino_core().read_model(path)
        model.add_outputs([t for t, _ in names])
        config = {'INFERENCE_PRECISION_HINT': hint}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        compiled.append(openvino_core().compile_model(model, 'CPU', config))
    stats = {t: np.zeros(4) for t, _ in names}
    for x in inputs:
        ref, got = (c({'input': x}) for c in compiled)
        for t, _ in names:
            a = ref[compiled[0].output(t)].astype(np.float64)
            diff = np.abs(got[compiled[1].output(t)] - a)
            stats[t] = [max(stats[t][0], diff.max()),
                        max(stats[t][1], np.abs(a).max()),
                        stats[t][2] + diff.mean(),
                        stats[t][3] + np.abs(a).mean()]
    return [dict(tensor=t, op=op,
                 rel_err=float(stats[t][0] / max(stats[t][1], 1e-12)),
                 mean_rel_err=float(stats[t][2] / max(stats[t][3], 1e-12)))
            for t, op in names]


def _noise_images(folder: str, shape, n: int) -> List[str]:
    """``n`` random RGB images of ``shape`` (H, W) written into ``folder``."""
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = osp.join(folder, f'noise_{i}.png')
        Image.fromarray(rng.integers(0, 255, (*shape, 3),
                                     dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def random_detector_checkpoint(config: str, path: str, seed: int = 0) -> str:
    """A checkpoint of ``config``'s detector with random weights, every BN
    randomised (fresh BNs make fusion trivial) and the classification
    layer's scores spread (as training would), so that it detects things.
    """
    import torch
    from mmengine.config import Config

    from ..deploy.checkpoint import build_detector
    from ..testing import randomize_bn
    torch.manual_seed(seed)
    model = randomize_bn(build_detector(Config.fromfile(config)), seed=seed)
    head = model.bbox_head
    cls = getattr(head, 'retina_cls', None)
    if cls is not None:
        with torch.no_grad():
            cls.weight.normal_(0, 0.05, generator=torch.Generator()
                               .manual_seed(seed))
            cls.bias.fill_(-2.0)
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def large_detector_latency(config: str,
                           out_dir: str,
                           shape=(800, 1333),
                           repeats: int = 3,
                           precisions: Optional[Sequence[str]] = None,
                           calib_images: int = 4,
                           threads: Optional[int] = 1,
                           checkpoint: Optional[str] = None,
                           logger=None) -> Dict:
    """Latency (and agreement with torch) of a detector deployed end to end
    at full resolution, in torch, onnxruntime FP32/INT8 and OpenVINO at
    each precision, interleaved over ``repeats`` + 1 random images of
    ``shape`` (the first run of each is a warm-up that the median keeps;
    use ``repeats`` >= 3).

    Args:
        config (str): the training config (e.g. the R50 RetinaNet).
        out_dir (str): where the deployment goes (``deploy_report.json``).
        shape (tuple): H, W of the images. Defaults to (800, 1333).
        repeats (int): timed images. Defaults to 3.
        precisions (list[str], optional): OpenVINO precisions; None: every
            native one.
        calib_images (int): random images calibrating INT8. Defaults to 4.
        threads (int, optional): threads of every runtime. Defaults to 1.
        checkpoint (str, optional): a trained checkpoint; None: random
            weights (:func:`random_detector_checkpoint`).
        logger: an ``MMLogger``; None: the current one.

    Returns:
        dict: the deploy report (``latency_ms``, ``openvino`` with the
        precisions that ran and their agreement with torch).
    """
    from ..deploy.end2end import deploy_checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint is None:
            checkpoint = random_detector_checkpoint(
                config, osp.join(tmp, 'random.pth'))
        images = _noise_images(tmp, shape, repeats + 1)
        return deploy_checkpoint(
            config, checkpoint, out_dir, force=True, images=images,
            shape=tuple(shape), int8=True, calib_images=images[:calib_images],
            threads=threads, backend='openvino', precisions=precisions,
            logger=logger)
