"""A/B studies of mmdet (and mmpretrain / mmseg) configs over seeds, through
mmengine's launchers, with paired Student-t intervals
(``tools/compare.py`` and ``tools/journey.py`` are their command lines)."""
from .api import (FLAGS, StudyRunError, check_launcher, launch_command,
                  run_plan, run_study, study_plan)
from .journey import (STARTS, Route, ensure_shapes_data,
                      fuse_pretrained_backbone, parse_route, run_journey,
                      run_routes)
from .reevaluate import reevaluate_study
from .report import (DEFAULT_METRIC, markdown, mean_std, plot, short_name,
                     summarise, t_interval)
from .runs import (RunSpec, StudyError, check_config, expected_metric_keys,
                   first_difference, merged_config, package_versions)
from ..staging import save_figure, write_json, write_text
from .worker import StudyRecorder, final_loss

__all__ = [
    'DEFAULT_METRIC', 'FLAGS', 'Route', 'RunSpec', 'STARTS', 'StudyError', 'StudyRecorder',
    'StudyRunError', 'check_config', 'check_launcher', 'ensure_shapes_data',
    'expected_metric_keys', 'final_loss', 'first_difference',
    'fuse_pretrained_backbone', 'launch_command', 'markdown', 'mean_std', 'merged_config',
    'package_versions', 'parse_route', 'plot', 'reevaluate_study',
    'run_journey', 'run_plan', 'run_routes', 'run_study',
    'save_figure', 'short_name', 'study_plan', 'summarise', 't_interval',
    'write_json', 'write_text'
]
