"""The whole-image study: how well the tiled prediction of a trained
detector scores over a whole held-out image (against the per-tile score of
the same detector), and how fast it runs over a large image in each runtime
beside DeepForest's own ``predict_tile``, one run, one machine, the same
threads (``docs/results/whole_image.json``).

:func:`run_spec` runs a study from a JSON spec file (``configs/trees/
whole_image_*.json``), the one call of ``tools/whole_image_study.py``; the
names of the parts are kept here too:

- :mod:`.accuracy`: :func:`accuracy_rows`, bbox mAP and DeepForest's
  recall / precision at IoU 0.4 of the whole image (at each overlap asked
  for) and of its val tiles; :func:`accuracy_study`.
- :mod:`.speed`: :func:`speed_rows`, seconds per megapixel and crowns per
  second of every detector, interleaved over ``repeats`` with DeepForest
  (:func:`time_deepforest`: :mod:`.deepforest_peer` run by the Python of
  DeepForest's own virtualenv), with the seconds of each step;
  :func:`speed_study`.
- :mod:`.r50`: :func:`r50_tree_config`, the like-for-like detector, the
  ACResNet-50 RetinaNet of ``configs/acnet`` with one class, read / tested
  on the tree set, for ``tools/deploy.py``; :func:`prepare_r50` writes it
  with random weights.
- :mod:`.spec`: :func:`read_spec` and the keys of a spec file.
- :mod:`.results`: :func:`load_detectors`, :func:`machine` and the write of
  one section of the results JSON.
"""
from typing import Dict, Optional

from .accuracy import (accuracy_rows, accuracy_study, tile_score,
                       whole_image_score)
from .r50 import R50_FILES, prepare_r50, r50_tree_config
from .results import load_detectors, machine
from .spec import DETECTOR_KEYS, PEER_KEYS, SPEC_KEYS, read_spec
from .speed import (PEER, SPEED_ORDER, speed_rows, speed_study, speedups,
                    time_deepforest)

__all__ = ['DETECTOR_KEYS', 'PEER', 'PEER_KEYS', 'R50_FILES', 'SPEC_KEYS',
           'SPEED_ORDER', 'accuracy_rows', 'accuracy_study', 'load_detectors',
           'machine', 'prepare_r50', 'r50_tree_config', 'read_spec',
           'run_spec', 'speed_rows', 'speed_study', 'speedups', 'tile_score',
           'time_deepforest', 'whole_image_score']


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
