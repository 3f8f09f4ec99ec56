"""Renderers: one JSON file (or a few) -> one Markdown table.

Each renderer takes a :class:`Context` (where the table goes, for relative
links), the JSON paths of its marker (relative to the repository root) and
the marker's ``key=value`` options, and returns the table's text.

The renderers live by what they read: :mod:`.studies` (study JSON),
:mod:`.deployment` (deploy reports, backend studies, the demo),
:mod:`.benchmarks` (the benchmark, costs, zoo, speed) and
:mod:`.whole_image`; :mod:`.common` holds what they share.
"""
from typing import Callable, Dict

from .benchmarks import (benchmark_complexity, benchmark_deploy,
                         benchmark_fusion, benchmark_inference,
                         benchmark_train, costs, speed, zoo)
from .common import Context
from .deployment import (backend_diffs, backend_latency, backend_study, demo,
                         deploy_det, deploy_seg, seg_backends)
from .studies import (branches, glance, int8_study, study_diffs, study_pairs,
                      study_summary, table)
from .whole_image import (recall_precision_pairs, whole_image_accuracy,
                          whole_image_profile, whole_image_speed)

RENDERERS: Dict[str, Callable[..., str]] = {
    f.__name__: f for f in (
        study_summary, study_diffs, study_pairs, int8_study, branches,
        deploy_det, deploy_seg, seg_backends, demo,
        benchmark_inference, benchmark_train, benchmark_complexity,
        benchmark_fusion, benchmark_deploy, backend_study, backend_diffs,
        backend_latency,
        table, glance, costs, speed, zoo, whole_image_accuracy,
        recall_precision_pairs, whole_image_speed, whole_image_profile)
}

__all__ = ['Context', 'RENDERERS'] + sorted(RENDERERS)
