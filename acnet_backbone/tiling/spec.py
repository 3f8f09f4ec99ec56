"""The spec file of a whole-image study (``configs/trees/
whole_image_*.json``): its keys per study and :func:`read_spec`, which reads
and checks one."""
import json
from typing import Dict, Sequence

from ..errors import InputError

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
