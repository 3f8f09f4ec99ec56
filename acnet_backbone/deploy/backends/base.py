"""The interface every inference runtime of the deployed files implements,
and the registry that names them.

A runtime is one :class:`DeployBackend` subclass in its own module of this
package, registered (in :data:`DEPLOY_BACKENDS`, an mmengine ``Registry``)
under its :attr:`~DeployBackend.name`, the one ``tools/deploy.py
--backend`` takes, and imported by the package's ``__init__``::

    @register_backend
    class MyRuntime(DeployBackend):
        name, display, precisions = 'myruntime', 'MyRuntime', ('fp32', )
        ...

The deploy code asks a backend (:func:`backend_for`) what it runs, on which
CPU, and for a session of a file in a precision; it never reads a
runtime's own module. A session is anything with onnxruntime's call,
``session.run(output_names, feeds) -> list of arrays`` (:class:`Session`),
so that every runtime runs a batch the same way. onnxruntime is the
reference: its FP32 session checks every export, the others run beside it.
"""
import os
from typing import Dict, List, Optional, Protocol, Sequence

import numpy as np
from mmengine.registry import Registry

from ..detections import int8_agreement
from ..errors import FuseError
from .cpu import cpu_features

DEPLOY_BACKENDS = Registry('deploy backend')
# the runtime that checks every export, and runs beside the chosen one
REFERENCE = 'onnxruntime'
# every precision a deployment may ask for, in report order
ALL_PRECISIONS = ('fp32', 'bf16', 'int8')


class Session(Protocol):
    """A deployed file loaded by a runtime: one call runs one batch."""

    def run(self, output_names: Optional[Sequence[str]],
            feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """The named outputs (all with None) for the input arrays."""


class DeployBackend:
    """One inference runtime of the end-to-end files.

    Subclasses set :attr:`name`, :attr:`display`, :attr:`precisions` and
    :attr:`display`, and implement :meth:`version` and :meth:`session`;
    the rest has defaults that suit a CPU runtime.

    Attributes:
        name (str): the registry name (``--backend``).
        display (str): the runtime's name in messages and tables.
        precisions (tuple[str]): what it can run at all, of
            :data:`ALL_PRECISIONS`.
        native_format (str, optional): the runtime's own file format that
            ``save_ir`` writes (OpenVINO IR); None: ONNX only.
    """
    name = ''
    display = ''
    precisions: Sequence[str] = ()
    native_format: Optional[str] = None

    # what the runtime is and what the CPU gives it -------------------------
    def version(self) -> Optional[str]:
        """The installed runtime's version, or None when it is missing."""
        raise NotImplementedError

    def check_installed(self) -> None:
        """Raise one line (a ``FuseError``) naming how to install the
        runtime when it is missing."""
        if self.version() is None:
            raise FuseError(f'`backend` {self.name} needs the {self.display} '
                            'package (tools/setup_env.sh installs it)')

    def capabilities(self) -> Dict:
        """What this CPU runs natively (:func:`.cpu.cpu_features`) and the
        runtime's version under its name, for the report."""
        return dict(cpu_features(), **{self.name: self.version()})

    def native_precisions(self, caps: Dict) -> List[str]:
        """The precisions of :attr:`precisions` this CPU runs natively: bf16
        only with native BF16 arithmetic."""
        return [p for p in self.precisions if p != 'bf16' or caps.get('BF16')]

    def check_precisions(self, precisions: Sequence[str],
                         caps: Dict) -> List[str]:
        """``precisions`` checked against :attr:`precisions` and the CPU,
        de-duplicated, in :data:`ALL_PRECISIONS` order.

        Raises:
            FuseError: an unknown precision, one this runtime does not run,
                or bf16 on a CPU without native BF16 (a runtime would
                emulate it or silently run f32).
        """
        unknown = [p for p in precisions if p not in ALL_PRECISIONS]
        if unknown:
            raise FuseError(f'unknown precision {unknown[0]!r} (choose from '
                            f'{", ".join(ALL_PRECISIONS)})')
        foreign = [p for p in precisions if p not in self.precisions]
        if foreign:
            others = [b.name for b in all_backends()
                      if foreign[0] in b.precisions]
            raise FuseError(
                f'`precisions` {foreign[0]}: {self.name} runs '
                f'{" and ".join(self.precisions)} on the CPU'
                + (f'; {foreign[0]} needs `backend` {" or ".join(others)}'
                   if others else ''))
        if 'bf16' in precisions and not caps.get('BF16'):
            raise FuseError(
                f'`precisions` bf16: this CPU ({caps.get("model") or "unknown"}'
                ') has no native BF16 (neither AMX-BF16 nor AVX512-BF16); '
                f'{self.display} would emulate it or run f32 instead. Choose '
                + ' or '.join(p for p in self.precisions if p != 'bf16'))
        return [p for p in ALL_PRECISIONS if p in precisions]

    def plan(self, precisions: Optional[Sequence[str]], int8: bool,
             caps: Optional[Dict] = None) -> Dict:
        """What a deployment on this backend runs (see :func:`plan_backend`);
        by default the precisions asked for, else every one the CPU runs
        natively."""
        self.check_installed()
        caps = caps if caps is not None else self.capabilities()
        chosen = self.check_precisions(
            precisions if precisions else self.native_precisions(caps), caps)
        return dict(backend=self.name, int8=int8 or 'int8' in chosen,
                    precisions=chosen, cpu=caps)

    # sessions ---------------------------------------------------------------
    def session(self, path: str, precision: str,
                threads: Optional[int] = None,
                custom_ops: Optional[str] = None) -> Session:
        """``path`` loaded for the CPU in ``precision``.

        Args:
            path (str): the ONNX file (the INT8 one for ``int8``).
            precision (str): one of :attr:`precisions`.
            threads (int, optional): the runtime's threads; None: its
                choice.
            custom_ops (str, optional): an onnxruntime op library the file
                needs (mmdeploy's); runtimes without such ops refuse it.

        Raises:
            FuseError: the runtime is missing or cannot load the file.
        """
        raise NotImplementedError

    def session_name(self, precision: str) -> str:
        """A session's name in the run, the report and ``latency_ms``."""
        return f'{self.name}_{precision}'

    def label(self, precision: str) -> str:
        """A session's column head in the deploy table."""
        return f'{self.display} {precision.upper()}'

    @staticmethod
    def file_key(precision: str) -> str:
        """Which end-to-end file a precision runs: ``onnx_int8`` for int8
        (the quantised file), ``onnx`` otherwise."""
        return 'onnx_int8' if precision == 'int8' else 'onnx'

    def describe(self, session: Session) -> Dict:
        """What a session really runs, read back from the runtime (e.g. the
        compiled precision); empty when the runtime does not say."""
        return {}

    def sessions(self, files: Dict[str, str], precisions: Sequence[str],
                 threads: Optional[int] = None, logger=None,
                 custom_ops: Optional[str] = None) -> Dict[str, Session]:
        """One session per precision, named by :meth:`session_name`.

        Args:
            files (dict): ``onnx`` (the FP32 file) and, for int8,
                ``onnx_int8``.
            precisions (list[str]): checked precisions.
            threads (int, optional): the runtime's threads.
            logger: an ``MMLogger`` (one line per session that describes
                itself), or None.
            custom_ops (str, optional): see :meth:`session`.
        """
        out = {}
        for p in precisions:
            session = self.session(files[self.file_key(p)], p, threads,
                                   custom_ops)
            described = self.describe(session)
            if logger is not None and described:
                logger.info(f'{self.display} {p}: {described}')
            out[self.session_name(p)] = session
        return out

    # native files -----------------------------------------------------------
    def native_files(self, onnx_names: Sequence[str]) -> List[str]:
        """The file names :meth:`save_native` writes for these ONNX files
        (none without a native format)."""
        return []

    def save_native(self, onnx_path: str) -> List[str]:
        """Write ``onnx_path`` in the runtime's own format beside it;
        returns the files written."""
        raise FuseError(f'`save_ir`: {self.name} has no file format of its '
                        'own (OpenVINO IR needs `backend` openvino)')

    # the report -------------------------------------------------------------
    def report_section(self, sessions: Dict[str, Session], run: Dict,
                       files: Dict[str, str],
                       checks: Optional[Dict] = None) -> Dict:
        """The backend's section of the deploy report: the runtime's
        version, the CPU and, per precision, the file, what ran and how its
        detections agree with torch's
        (:func:`~acnet_backbone.deploy.detections.int8_agreement`: torch
        detections scoring >= 0.3 found at IoU >= 0.5 with the same label).

        Args:
            sessions (dict): :meth:`sessions`.
            run (dict): :func:`~acnet_backbone.deploy.run.run_side_by_side`
                of torch and these sessions.
            files (dict): the end-to-end files the sessions were made of
                (``onnx``, ``onnx_int8``: :meth:`file_key`).
            checks (dict, optional): session name -> its exact check
                against torch (the FP32 one), copied in as ``check``.
        """
        out = dict(version=self.version(), cpu=self.capabilities(),
                   precisions={})
        for name, session in sessions.items():
            precision = next(p for p in self.precisions
                             if self.session_name(p) == name)
            path = files[self.file_key(precision)]
            entry = dict(name=name, file=os.path.basename(path),
                         compiled=self.describe(session),
                         vs_torch=int8_agreement(run['torch'], run[name]))
            if checks and name in checks:
                entry['check'] = checks[name]
            out['precisions'][precision] = entry
        return out

    def cpu_line(self, caps: Dict) -> str:
        """One line for the console: the CPU and what it runs natively."""
        flags = ', '.join(f'{k} {"yes" if caps.get(k) else "no"}'
                          for k in ('AMX', 'BF16', 'VNNI', 'AVX2'))
        return (f'{caps.get("model") or "unknown CPU"}, {caps.get("cores")} '
                f'logical CPUs: {flags}')

    def summary_rows(self, section: Dict) -> List[tuple]:
        """The deploy table's rows of the backend's report section: the
        CPU, the runtime and, per precision, what ran and how many of
        torch's detections it finds."""
        rows = [('CPU', self.cpu_line(section['cpu'])),
                (self.display, section['version'])]
        for p, v in section['precisions'].items():
            agree = v['vs_torch']
            found = 'n/a' if agree['matched'] is None else \
                f'{agree["matched"]:.1%}'
            exact = '' if 'check' not in v else (
                f'; images matching torch exactly: '
                f'{v["check"]["images"] - v["check"]["mismatched_images"]} '
                f'of {v["check"]["images"]}')
            rows.append((f'{self.display} {p.upper()} ran',
                         f'{v["file"]}, {self.describe_line(v["compiled"])}'
                         f'torch detections found (score >= '
                         f'{agree["score_thr"]}, IoU >= {agree["iou_thr"]}): '
                         f'{found}{exact}'))
        return rows

    def describe_line(self, described: Dict) -> str:
        """:meth:`describe`'s dict as the start of a table cell (ending in
        ``'; '``), empty when there is nothing to say."""
        return ''.join(f'{k} {v}, ' for k, v in described.items())[:-2] + \
            '; ' if described else ''


def register_backend(cls):
    """Class decorator: register a :class:`DeployBackend` subclass in
    :data:`DEPLOY_BACKENDS` under its :attr:`~DeployBackend.name`."""
    if not cls.name or not cls.precisions:
        raise TypeError(f'{cls.__name__} names no `name` or `precisions`')
    DEPLOY_BACKENDS.register_module(name=cls.name, module=cls)
    return cls


def backend_for(name: str) -> DeployBackend:
    """The registered backend ``name``.

    Raises:
        FuseError: no backend of that name (one line naming those there
            are).
    """
    cls = DEPLOY_BACKENDS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise FuseError(f'unknown backend {name!r} (choose from '
                        f'{", ".join(backend_names())})')
    return cls()


def backend_names() -> List[str]:
    """Every registered backend, the reference first."""
    names = sorted(DEPLOY_BACKENDS.module_dict)
    return sorted(names, key=lambda n: n != REFERENCE)


def all_backends() -> List[DeployBackend]:
    """One instance of every registered backend, the reference first."""
    return [backend_for(n) for n in backend_names()]


def session_labels() -> Dict[str, str]:
    """Every session name any backend gives -> its column head."""
    return {b.session_name(p): b.label(p) for b in all_backends()
            for p in b.precisions}


def plan_backend(backend: str, precisions: Optional[Sequence[str]],
                 int8: bool, caps: Optional[Dict] = None) -> Dict:
    """Resolve ``--backend`` / ``--precision`` / ``--int8`` into what the
    deployment runs, before anything is done.

    The reference (onnxruntime) always runs the FP32 file (it checks the
    export) and, with int8, the INT8 file; another backend runs the
    precisions asked for, by default every precision the CPU runs natively,
    beside it.

    Args:
        backend (str): a registered backend (:func:`backend_names`).
        precisions (list[str], optional): the precisions asked for.
        int8 (bool): ``--int8`` (the INT8 file in onnxruntime).
        caps (dict, optional): the backend's :meth:`~DeployBackend.
            capabilities`; read when None.

    Returns:
        dict: ``backend``, ``int8`` (whether the INT8 file is made),
        ``precisions`` (what the chosen backend runs beside the reference;
        empty for the reference itself) and ``cpu`` (the chosen backend's
        capabilities; None for the reference).

    Raises:
        FuseError: an unknown backend or precision, a precision the backend
            or the CPU does not run, or the runtime missing.
    """
    return backend_for(backend).plan(precisions, int8, caps)
