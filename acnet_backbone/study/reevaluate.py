"""Evaluate a finished study's checkpoints again, under changed settings
and without training: another or a larger val set, another score threshold.

It separates the two sources of a study's seed-to-seed spread: the
training (each seed's network differs) and the evaluation (a val set of a
hundred images scores the same network with sampling noise). Evaluating the
same checkpoints on a larger val set keeps the first and shrinks the
second.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional

from .report import DEFAULT_METRIC, markdown, plot, short_name, summarise
from .runs import (StudyError, check_config, complete_metrics,
                   first_difference, require_metric)
from ..staging import write_json, write_text


def _source_runs(work_dir: str):
    path = osp.join(work_dir, 'compare.json')
    try:
        with open(path) as f:
            report = json.load(f)
        runs, summary = report['runs'], report['summary']
    except OSError:
        raise StudyError(f'{path} not found: run the study '
                         '(tools/compare.py) first') from None
    except (ValueError, KeyError, TypeError):
        raise StudyError(f'{path} is not a study report') from None
    return runs, [s['config'] for s in summary]


def _checkpoint(work_dir: str, run: Dict) -> str:
    """The run's checkpoint, also after the work dir was moved."""
    recorded = run.get('checkpoint') or ''
    local = osp.join(work_dir, run['config'], f'seed_{run["seed"]}',
                     osp.basename(recorded))
    for path in (recorded, local):
        if path and osp.isfile(path):
            return path
    raise StudyError(f'checkpoint of {run["config"]} seed {run["seed"]} '
                     f'not found ({recorded or "none recorded"})')


def _planned(work_dir: str, out_dir: str, run: Dict, cfg_options: Dict,
             options: Dict, metric: str) -> tuple:
    """``(run, merged config, output folder, checkpoint)`` of one run, its
    config, options, metric and earlier result checked (StudyError)."""
    from mmengine.config import Config
    config = osp.join(work_dir, run['config'], f'seed_{run["seed"]}',
                      'config.py')
    if not osp.isfile(config):
        raise StudyError(f'{config} not found')
    cfg = Config.fromfile(config)
    try:
        cfg.merge_from_dict(dict(cfg_options))
    except Exception as err:  # a key path that does not fit
        raise StudyError(f'`cfg_options` do not fit {config}: '
                         f'{err}') from None
    check_config(cfg, config, metric)
    out = osp.join(out_dir, run['config'], f'seed_{run["seed"]}')
    result_file = osp.join(out, 'result.json')
    if osp.isfile(result_file):
        with open(result_file) as f:
            old = json.load(f).get('evaluated_with', {})
        if old != options:
            raise StudyError(
                f'{out} holds an evaluation with other options (first '
                f'difference: {first_difference(old, options)}): use '
                'another output folder')
    return run, cfg, out, _checkpoint(work_dir, run)


def _evaluate(run: Dict, cfg, out: str, checkpoint: str, work_dir: str,
              options: Dict) -> Dict:
    """Evaluate one run's checkpoint under ``cfg``; write its record (the
    training record kept, the metrics replaced) to ``out/result.json``."""
    from ..training import build_runner
    cfg.work_dir = out
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg.launcher = 'none'
    metrics = build_runner(cfg).val()
    metrics, empty = complete_metrics(metrics, cfg.val_evaluator)
    stale = {short_name(m) for m in run.get('metrics', {})}
    record = {k: v for k, v in run.items() if k not in stale}
    record.update(metrics=metrics, no_detections=empty,
                  checkpoint=checkpoint, evaluated_with=options,
                  source=osp.join(work_dir, 'compare.json'))
    for key, value in metrics.items():
        record[short_name(key)] = value
    write_json(osp.join(out, 'result.json'), record)
    return metrics


def reevaluate_study(work_dir: str, out_dir: str, cfg_options: Dict,
                     metric: str = DEFAULT_METRIC,
                     title: Optional[str] = None, logger=None) -> Dict:
    """Evaluate every run of the study in ``work_dir`` (its
    ``compare.json``) again, each from its own dumped config with
    ``cfg_options`` merged in (e.g. ``val_dataloader.dataset.data_root``
    and ``val_evaluator.ann_file`` of a larger val set) and its last
    checkpoint, with the config's validation loop and evaluator; writes
    ``out_dir/compare.json`` (the same schema; each run keeps its training
    record and gains ``evaluated_with``), ``compare.md`` and ``compare.png``
    and returns the report.

    Checked before anything is evaluated or written (StudyError, one line):
    the study's report and checkpoints, every merged config and the metric,
    and ``out_dir`` (not the study's own folder; a result there from other
    options is refused with its first differing key). Finished evaluations
    are reused, so an interrupted call resumes.
    """
    if not cfg_options:
        raise StudyError('no `cfg_options` given: the evaluation would '
                         'repeat the study\'s own')
    if osp.abspath(out_dir) == osp.abspath(work_dir):
        raise StudyError('the output folder must not be the study\'s own')
    runs, names = _source_runs(work_dir)
    options = json.loads(json.dumps(dict(cfg_options), default=str))
    todo = [_planned(work_dir, out_dir, run, cfg_options, options, metric)
            for run in runs]
    os.makedirs(out_dir, exist_ok=True)
    if logger is None:
        from .api import _logger
        logger = _logger(out_dir)
    results = []
    for i, (run, cfg, out, checkpoint) in enumerate(todo):
        result_file = osp.join(out, 'result.json')
        if not osp.isfile(result_file):
            logger.info(f'evaluation {i + 1}/{len(todo)}: {run["config"]} '
                        f'seed {run["seed"]} ({checkpoint})')
            metrics = _evaluate(run, cfg, out, checkpoint, work_dir, options)
            logger.info(f'  {metric} {metrics.get(metric, float("nan")):.3f}')
        with open(result_file) as f:
            result = json.load(f)
        require_metric(result, metric,
                       f'{run["config"]} seed {run["seed"]}')
        results.append(result)
    report = summarise(results, names, metric)
    write_json(osp.join(out_dir, 'compare.json'), report)
    write_text(osp.join(out_dir, 'compare.md'), markdown(report))
    plot(report, osp.join(out_dir, 'compare.png'), title=title)
    return report
