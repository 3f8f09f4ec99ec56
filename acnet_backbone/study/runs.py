"""What a study run is, and what is checked before anything trains.

A run is identified by its merged config's content (the config file with
``--cfg-options`` applied and ``randomness.seed`` set to the run's seed):
the study dumps it as ``<run dir>/config.py`` and keeps it in ``run.json``.
A later call whose merged config differs for the same run directory is
refused with the first differing key, never mixed in.
"""
import json
import os.path as osp
from dataclasses import dataclass, field
from importlib import metadata
from typing import Dict, Iterator, Optional, Tuple

from mmengine.config import Config

from ..errors import InputError
from ..metrics import complete_metrics, expected_metric_keys  # noqa: F401
from ..training import schedule_length

# keys the study sets itself for every run: not part of what a run is
RUNTIME_KEYS = ('work_dir', 'launcher', 'resume', 'load_from')
PACKAGES = ('torch', 'torchvision', 'numpy', 'mmengine', 'mmcv', 'mmdet',
            'mmpretrain', 'mmsegmentation', 'mmdeploy', 'onnxruntime',
            'acnet_backbone')


class StudyError(InputError, RuntimeError):
    """Bad input to a study: reported in one line (exit status 2)."""


@dataclass
class RunSpec:
    """One run of a study: a config, a seed and the settings that override
    the config (``--cfg-options`` as a dict)."""
    config: str
    seed: int
    options: Dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return config_name(self.config)


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def run_dir(work_dir: str, spec: RunSpec) -> str:
    return osp.join(work_dir, spec.name, f'seed_{spec.seed}')


def package_versions() -> Dict[str, Optional[str]]:
    """Installed versions of the stack a run depends on (None: absent)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def merged_config(spec: RunSpec) -> Config:
    """The config of a run: the file, the options, the seed. Raises
    StudyError (one line) when it cannot be read."""
    if not osp.isfile(spec.config):
        raise StudyError(f'config not found: {spec.config}')
    try:
        cfg = Config.fromfile(spec.config)
        if spec.options:
            cfg.merge_from_dict(dict(spec.options))
    except Exception as err:  # a config is Python: anything can fail
        msg = str(err).strip().splitlines()
        raise StudyError(f'cannot read config {spec.config}: '
                         f'{type(err).__name__}: '
                         f'{msg[0] if msg else ""}') from None
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=int(spec.seed))
    for key in RUNTIME_KEYS:
        cfg.pop(key, None)
    return cfg


def identity(cfg: Config) -> Dict:
    """The content that identifies a run, as plain JSON types."""
    return json.loads(json.dumps(cfg.to_dict(), sort_keys=True, default=repr))


def _flatten(obj, prefix='') -> Iterator[Tuple[str, object]]:
    if isinstance(obj, dict):
        if not obj:
            yield prefix, {}
        for key in sorted(obj):
            yield from _flatten(obj[key], f'{prefix}.{key}' if prefix
                                else str(key))
    elif isinstance(obj, list) and obj and any(
            isinstance(v, (dict, list)) for v in obj):
        for i, value in enumerate(obj):
            yield from _flatten(value, f'{prefix}[{i}]')
    else:
        yield prefix, obj


def first_difference(old: Dict, new: Dict) -> Optional[str]:
    """The first (sorted) dotted key whose value differs, or None."""
    a, b = dict(_flatten(old)), dict(_flatten(new))
    for key in sorted(set(a) | set(b)):
        if a.get(key, '<absent>') != b.get(key, '<absent>'):
            return (f'{key}: {a.get(key, "<absent>")!r} -> '
                    f'{b.get(key, "<absent>")!r}')
    return None


def require_metric(result: Dict, metric: str, what: str) -> float:
    """``metric`` from a run's ``result.json`` content; StudyError naming the
    keys the evaluator did return when it is missing."""
    metrics = result.get('metrics', {})
    if metric not in metrics:
        raise StudyError(
            f'{what}: the evaluator returned no {metric!r} (it returned: '
            f'{", ".join(sorted(metrics)) or "nothing"})')
    return metrics[metric]


def _dataset_problems(ds, where: str) -> Iterator[str]:
    """Missing annotation files / image folders of a dataset config, looking
    through mmengine's wrappers (RepeatDataset, ClassBalancedDataset,
    ConcatDataset)."""
    if 'dataset' in ds:
        yield from _dataset_problems(ds['dataset'], where)
        return
    if 'datasets' in ds:
        for sub in ds['datasets']:
            yield from _dataset_problems(sub, where)
        return
    root = ds.get('data_root') or ''
    ann = ds.get('ann_file') or ''
    if ann and not osp.isfile(osp.join(root, ann)):
        yield f'{where}: {osp.join(root, ann)} is missing'
    prefix = ds.get('data_prefix') or {}
    folders = prefix.values() if isinstance(prefix, dict) else [prefix]
    for folder in folders:
        if folder and not osp.isdir(osp.join(root, folder)):
            yield f'{where}: folder {osp.join(root, folder)} is missing'


def check_config(cfg: Config, config: str, metric: str) -> None:
    """Everything about one merged config that can be checked before any
    training; raises StudyError with one line."""
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                'train_cfg'):
        if not cfg.get(key):
            raise StudyError(f'{config} has no {key}: not a training config '
                             'with an evaluator')
    try:
        schedule_length(cfg)
    except ValueError as err:
        raise StudyError(f'{config}: {err} (no training loop)') from None
    for loader in ('train_dataloader', 'val_dataloader'):
        for problem in _dataset_problems(cfg[loader].dataset, loader):
            hint = (' (make it with tools/make_shapes_dataset.py)'
                    if 'shapes' in problem else '')
            raise StudyError(f'dataset of {config} not found: {problem}'
                             f'{hint}')
    keys = expected_metric_keys(cfg.val_evaluator)
    if keys is not None and metric not in keys:
        raise StudyError(f'the evaluator of {config} does not return '
                         f'{metric!r} (it returns: {", ".join(keys)})')
