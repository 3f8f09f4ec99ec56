"""The pretrain -> fine-tune journey on the embedded data as a study whose
replicate is the whole pipeline: for every seed ``s``, each backbone is
pretrained with mmpretrain under seed ``s`` and its detector fine-tuned from
that checkpoint under seed ``s``. The fine-tuned detectors are compared
paired by seed, so the interval covers the pretraining's randomness too.

A fine-tuned model is reached by a *route*: which pretraining it starts
from and which fine-tune config it trains. ``make journey`` has two (plain
-> plain, ACB -> ACB); the starting-point study (``make study-start``) adds
the routes a user without ACB-pretrained weights can take: the plain
pretraining fine-tuned as an ACResNet whose branches are added at
fine-tuning (:data:`START_PLAIN`), and the ACB pretraining fused into a
plain ResNet before a plain fine-tuning (:data:`START_ACB_FUSED`).

Layout of ``W``: ``W/pretrain/`` and ``W/finetune/`` are study folders
(:mod:`acnet_backbone.study.api`), ``W/journey.json`` holds the fine-tune
report's ``runs`` / ``summary`` / ``differences`` (to the first route) plus
``pretrain`` (the pretraining report over ``accuracy/top1``),
``branches`` (per ACB config and stage: how far the branches moved in
fine-tuning, :mod:`acnet_backbone.study.branches`), ``W/journey.md`` the
tables, ``W/routes.png`` loss curves and branch weights. The fused start of seed ``s`` is written once
beside its pretraining (``<pretrain run>/backbone_fused.pth``). Another
journey from the same pretraining passes that journey's ``pretrain_dir``:
its finished pretrainings are reused, missing seeds are pretrained there.
The pipelines run seed by seed, so a journey stopped early holds complete
pipelines.
"""
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence

from .api import run_plan, study_plan
from .branches import plot_routes, route_branches
from .report import DEFAULT_METRIC, markdown
from .runs import (RunSpec, StudyError, check_config, config_name,
                   merged_config, run_dir)
from ..staging import write_json, write_text

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'configs')
PRETRAIN = tuple(osp.join(CONFIG_DIR, 'pretrain', f'{n}.py') for n in (
    'fcnresnet18_shapes-cls', 'acresnet18_shapes-cls'))
FINETUNE = tuple(osp.join(CONFIG_DIR, 'shapes', f'{n}.py') for n in (
    'retinanet_fcnresnet18_fpn_shapes-ft',
    'retinanet_acresnet18_fpn_shapes-ft'))
# where a fine-tune config takes its pretrained backbone from
CHECKPOINT_KEY = 'model.backbone.init_cfg.checkpoint'
# the starts of a route: the plain pretraining (PRETRAIN[0]), the ACB one
# (PRETRAIN[1]), or the ACB one fused into a plain ResNet
START_PLAIN, START_ACB, START_ACB_FUSED = 'plain', 'acb', 'acb-fused'
STARTS = (START_PLAIN, START_ACB, START_ACB_FUSED)
FUSED_NAME = 'backbone_fused.pth'


class Route(NamedTuple):
    """One way to a fine-tuned model: ``start`` (one of :data:`STARTS`) and
    the fine-tune ``config`` trained from it."""
    start: str
    config: str


def parse_route(text: str) -> Route:
    """``'START:CONFIG'`` (e.g. ``'plain:configs/shapes/x.py'``) as a
    :class:`Route`; raises StudyError on an unknown start."""
    start, sep, config = text.partition(':')
    if not sep or not config:
        raise StudyError(f'route {text!r}: expected START:CONFIG with START '
                         f'one of {", ".join(STARTS)}')
    if start not in STARTS:
        raise StudyError(f'route {text!r}: unknown start {start!r} (one of '
                         f'{", ".join(STARTS)})')
    return Route(start, config)


def ensure_shapes_data(data_root: str = 'data') -> None:
    """Make the detection and classification forms of the embedded data
    where missing (deterministic)."""
    from ..datasets import make_shapes_cls_dataset, make_shapes_dataset
    if not osp.isfile(osp.join(data_root, 'shapes_cls', 'annotations',
                               'val.txt')):
        make_shapes_cls_dataset(osp.join(data_root, 'shapes_cls'))
    if not osp.isfile(osp.join(data_root, 'shapes', 'annotations',
                               'val.json')):
        make_shapes_dataset(osp.join(data_root, 'shapes'))


def fuse_pretrained_backbone(run_path: str, checkpoint: str,
                             out: str) -> str:
    """Fuse the ACB backbone of the pretraining in ``run_path`` (its merged
    ``config.py``, its ``checkpoint``) into a plain ResNet and save it as
    ``out`` (``state_dict`` with the ``backbone.`` prefix, as the fine-tune
    configs' ``Pretrained`` loader expects). Written once, staged; returns
    ``out``."""
    if osp.isfile(out):
        return out
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from ..safe_load import safe_load
    from ..staging import save_torch
    cfg = Config.fromfile(osp.join(run_path, 'config.py'))
    backbone_cfg = dict(cfg.model.backbone)
    backbone_cfg['type'] = backbone_cfg['type'].split('.')[-1]
    backbone_cfg.pop('init_cfg', None)
    backbone = MODELS.build(backbone_cfg)
    if not hasattr(backbone, 'switch_to_deploy'):
        raise StudyError(f'{run_path}: backbone {backbone_cfg["type"]} has '
                         'no ACB to fuse (start acb-fused needs an ACB '
                         'pretraining)')
    state = safe_load(checkpoint)['state_dict']
    prefix = 'backbone.'
    backbone.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                              if k.startswith(prefix)}, strict=True)
    backbone.eval().switch_to_deploy()
    fused = {prefix + k: v.detach().clone()
             for k, v in backbone.state_dict().items()}
    meta = dict(fused_from=osp.abspath(checkpoint),
                note='ACB branches folded into the square kernels')
    save_torch(out, dict(state_dict=fused, meta=meta))
    return out


def _pretrain_index(start: str) -> int:
    """Which pretraining config a start trains: 0 the plain, 1 the ACB."""
    return 0 if start == START_PLAIN else 1


def _start_checkpoint(route: Route, seed: int, pre_dir: str,
                      pretrain: Sequence[str], pre_runs: Dict) -> str:
    """The checkpoint a route of ``seed`` fine-tunes from: the path under
    the pretraining folder as given (relative stays relative), so that the
    fine-tune run's identity is stable."""
    spec = RunSpec(pretrain[_pretrain_index(route.start)], int(seed))
    ckpt = pre_runs[(spec.name, spec.seed)]['checkpoint']
    path = run_dir(pre_dir, spec)
    ckpt = osp.join(path, osp.basename(ckpt))
    if route.start == START_ACB_FUSED:
        ckpt = fuse_pretrained_backbone(path, ckpt,
                                        osp.join(path, FUSED_NAME))
    return ckpt


def _check_routes(routes: Sequence[Route], pretrain: Sequence[str],
                  options: Optional[Dict], metric: str) -> None:
    if not routes:
        raise StudyError('no route given')
    for route in routes:
        if route.start not in STARTS:
            raise StudyError(f'unknown start {route.start!r} (one of '
                             f'{", ".join(STARTS)})')
        if _pretrain_index(route.start) >= len(pretrain):
            raise StudyError(f'start {route.start!r} needs the ACB '
                             'pretraining config (the second of pretrain)')
        check_config(merged_config(RunSpec(route.config, 0,
                                           dict(options or {}))),
                     route.config, metric)


def run_routes(work_dir: str, seeds: Sequence[int], routes: Sequence[Route],
               pretrain: Sequence[str] = PRETRAIN,
               pretrain_options: Optional[Dict] = None,
               finetune_options: Optional[Dict] = None,
               launcher: str = 'none', gpus: int = 1,
               metric: str = DEFAULT_METRIC,
               pretrain_dir: Optional[str] = None) -> Dict:
    """Fine-tune every route of ``routes`` under every seed from that seed's
    pretraining (``pretrain``: the plain config, then the ACB one; only the
    ones the routes start from are trained); the first route is the
    baseline of the paired differences. Seed by seed, finished runs reused.
    Returns the report written to ``journey.json``."""
    routes = [Route(*r) for r in routes]
    # the fine-tune configs (files, datasets, the metric) are checked before
    # the (long) pretraining
    _check_routes(routes, pretrain, finetune_options, metric)
    used = {_pretrain_index(r.start) for r in routes}
    needed = [c for i, c in enumerate(pretrain) if i in used]
    pre_dir = pretrain_dir or osp.join(work_dir, 'pretrain')
    study_plan([r.config for r in routes], seeds)  # names, seeds: one line
    pre = ft = None
    for i in range(len(seeds)):
        done = [int(s) for s in seeds[:i + 1]]
        pre = run_plan(study_plan(needed, done, pretrain_options), pre_dir,
                       metric='accuracy/top1', launcher=launcher, gpus=gpus,
                       title='pretraining (mmpretrain), val top-1')
        pre_runs = {(r['config'], r['seed']): r for r in pre['runs']}
        plan: List[RunSpec] = []
        for seed in done:
            for route in routes:
                ckpt = _start_checkpoint(route, seed, pre_dir, pretrain,
                                         pre_runs)
                plan.append(RunSpec(route.config, seed, dict(
                    finetune_options or {}, **{CHECKPOINT_KEY: ckpt})))
        ft = run_plan(plan, osp.join(work_dir, 'finetune'), metric=metric,
                      launcher=launcher, gpus=gpus,
                      title='fine-tuned from the same seed\'s pretraining')
    branches = route_branches(ft)
    report = dict(ft, pretrain=pre, branches=branches,
                  routes=[dict(config=config_name(r.config),
                               start=r.start) for r in routes])
    write_json(osp.join(work_dir, 'journey.json'), report)
    if len(routes) > 2 or branches:
        plot_routes(ft, branches, osp.join(work_dir, 'routes.png'),
                    title='starting points, fine-tuned')
    text = ('Pretraining (mmpretrain, val top-1 accuracy):\n\n' +
            markdown(pre) + '\nFine-tuned models (each seed fine-tunes '
            'from the same seed\'s pretraining; start of each route: ' +
            ', '.join(f'{config_name(r.config)} <- '
                      f'{r.start}' for r in routes) + '):\n\n' +
            markdown(ft))
    write_text(osp.join(work_dir, 'journey.md'), text)
    return report


def run_journey(work_dir: str, seeds: Sequence[int],
                pretrain: Sequence[str] = PRETRAIN,
                finetune: Sequence[str] = FINETUNE,
                pretrain_options: Optional[Dict] = None,
                finetune_options: Optional[Dict] = None,
                launcher: str = 'none', gpus: int = 1,
                metric: str = DEFAULT_METRIC,
                pretrain_dir: Optional[str] = None) -> Dict:
    """The journey of ``make journey``: the plain pretraining fine-tunes
    ``finetune[0]``, the ACB one ``finetune[1]`` (either list may hold
    the first only) (see :func:`run_routes`;
    e.g. the segmentors of ``configs/seg/*-ft.py`` over ``metric='mIoU'``).
    Returns the report written to ``journey.json``."""
    if len(pretrain) != len(finetune) or len(finetune) > 2:
        raise StudyError('one pretraining config per fine-tune config: the '
                         'plain one, then the ACB one')
    return run_routes(
        work_dir, seeds, [Route(start, config) for start, config in zip(
            (START_PLAIN, START_ACB), finetune)],
        pretrain=pretrain, pretrain_options=pretrain_options,
        finetune_options=finetune_options, launcher=launcher, gpus=gpus,
        metric=metric, pretrain_dir=pretrain_dir)
