"""The pretrain -> fine-tune journey on the embedded data as a study whose
replicate is the whole pipeline: for every seed ``s``, each backbone is
pretrained with mmpretrain under seed ``s`` and its detector fine-tuned from
that checkpoint under seed ``s``. The fine-tuned detectors are compared
paired by seed, so the interval covers the pretraining's randomness too.

Layout of ``W``: ``W/pretrain/`` and ``W/finetune/`` are study folders
(:mod:`acnet_backbone.study.api`), ``W/journey.json`` holds the fine-tune
report's ``runs`` / ``summary`` / ``differences`` plus ``pretrain`` (the
pretraining report over ``accuracy/top1``), ``W/journey.md`` the tables.
Another journey from the same pretraining (the segmentors', ``make
journey-seg``) passes that journey's ``pretrain_dir``: its finished
pretrainings are reused, missing seeds are pretrained there.
"""
import os.path as osp
from typing import Dict, Optional, Sequence

from .api import run_plan, study_plan
from .report import DEFAULT_METRIC, markdown
from .runs import (RunSpec, StudyError, check_config, merged_config,
                   run_dir)
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


def run_journey(work_dir: str, seeds: Sequence[int],
                pretrain: Sequence[str] = PRETRAIN,
                finetune: Sequence[str] = FINETUNE,
                pretrain_options: Optional[Dict] = None,
                finetune_options: Optional[Dict] = None,
                launcher: str = 'none', gpus: int = 1,
                metric: str = DEFAULT_METRIC,
                pretrain_dir: Optional[str] = None) -> Dict:
    """Pretrain every ``pretrain[i]`` and fine-tune ``finetune[i]`` from it,
    each pipeline under one seed; the first pair is the baseline. The
    fine-tuned models are compared over ``metric`` (e.g. ``mIoU`` for mmseg
    configs); the pretrainings live in ``pretrain_dir`` (default
    ``work_dir/pretrain``). Finished runs are reused. Returns the report
    written to ``journey.json``."""
    if len(pretrain) != len(finetune):
        raise StudyError('one pretraining config per fine-tune config')
    pre_dir = pretrain_dir or osp.join(work_dir, 'pretrain')
    pre_plan = study_plan(pretrain, seeds, pretrain_options)
    # check the fine-tune configs (files, datasets, the metric) before the
    # (long) pretraining
    for config in finetune:
        check_config(merged_config(RunSpec(config, 0,
                                          dict(finetune_options or {}))),
                     config, metric)
    pre = run_plan(pre_plan, pre_dir, metric='accuracy/top1',
                   launcher=launcher, gpus=gpus,
                   title='pretraining (mmpretrain), val top-1')
    by_run = {(r['config'], r['seed']): r for r in pre['runs']}
    ft_plan = []
    for seed in seeds:
        for pre_cfg, ft_cfg in zip(pretrain, finetune):
            spec = RunSpec(pre_cfg, int(seed))
            ckpt = by_run[(spec.name, spec.seed)]['checkpoint']
            # the path under the study folder as given (relative stays
            # relative), so that the fine-tune run's identity is stable
            ckpt = osp.join(run_dir(pre_dir, spec), osp.basename(ckpt))
            ft_plan.append(RunSpec(ft_cfg, int(seed), dict(
                finetune_options or {}, **{CHECKPOINT_KEY: ckpt})))
    ft = run_plan(ft_plan, osp.join(work_dir, 'finetune'), metric=metric,
                  launcher=launcher, gpus=gpus,
                  title='fine-tuned from the same seed\'s pretraining')
    report = dict(ft, pretrain=pre)
    write_json(osp.join(work_dir, 'journey.json'), report)
    text = ('Pretraining (mmpretrain, val top-1 accuracy):\n\n' +
            markdown(pre) + '\nFine-tuned models (each seed fine-tunes '
            'from the same seed\'s pretraining):\n\n' + markdown(ft))
    write_text(osp.join(work_dir, 'journey.md'), text)
    return report
