"""What both halves of the whole-image study share
(``docs/results/whole_image.json``): the patch detectors of a spec's
entries, the machine and its load averages, and the write of one section of
the results JSON (the other kept)."""
import json
import os
import os.path as osp
import platform
from typing import Dict, List, Optional, Sequence


def _load() -> List[float]:
    """The 1, 5 and 15 minute load averages of the machine."""
    return [round(x, 2) for x in os.getloadavg()]


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
