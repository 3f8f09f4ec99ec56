"""The stack check at import: one line, an error where the stack cannot work,
a warning where it is untested."""
import subprocess
import sys

import pytest

from acnet_backbone import compat
from acnet_backbone.compat import (TESTED_STACKS, IncompatibleStackError,
                                   UntestedStackWarning, check_stack)


@pytest.mark.parametrize('stack', sorted(TESTED_STACKS))
def test_tested_stacks_pass(stack):
    assert check_stack(TESTED_STACKS[stack]) == (None, '')


def test_installed_stack_is_a_tested_one():
    """The stack this suite runs on is one the check accepts silently."""
    assert check_stack(compat.installed_versions()) == (None, '')


def test_numpy2_under_torch21_is_an_error():
    level, line = check_stack(dict(TESTED_STACKS['torch21'], numpy='2.1.0'))
    assert level == 'error' and '\n' not in line
    assert 'numpy 2.1.0' in line and 'torch 2.1.2' in line
    assert 'numpy<2' in line and 'torch 2.1-2.14' in line


def test_mmcv22_is_an_error():
    level, line = check_stack(dict(TESTED_STACKS['primary'], mmcv='2.2.0'))
    assert level == 'error' and 'mmcv 2.2.0' in line


@pytest.mark.parametrize('package,version', [('torch', '2.0.1'),
                                             ('torch', '2.15.0'),
                                             ('mmdet', '3.2.0'),
                                             ('python', '3.12.1')])
def test_untested_version_is_a_warning(package, version):
    versions = dict(TESTED_STACKS['primary'], **{package: version})
    if package == 'torch' and version.startswith('2.0'):
        versions['numpy'] = '1.26.4'
    level, line = check_stack(versions)
    assert level == 'warning' and '\n' not in line
    assert f'{package} {version}' in line and 'tested:' in line


def test_check_installed_stack_raises_or_warns(monkeypatch):
    monkeypatch.setattr(compat, 'installed_versions',
                        lambda: dict(TESTED_STACKS['torch21'], numpy='2.0.0'))
    with pytest.raises(IncompatibleStackError, match='cannot run on numpy'):
        compat.check_installed_stack()
    monkeypatch.setattr(compat, 'installed_versions',
                        lambda: dict(TESTED_STACKS['torch21'], torch='2.0.1'))
    with pytest.warns(UntestedStackWarning, match='torch 2.0.1'):
        compat.check_installed_stack()


def test_import_error_is_one_line(tmp_path):
    """An impossible stack fails ``import acnet_backbone`` with the check's
    line (no AttributeError from a missing torch API)."""
    code = ('import importlib.metadata as m\n'
            'real = m.version\n'
            "m.version = lambda n: '2.0.0' if n == 'numpy' else ("
            "'2.1.2' if n == 'torch' else real(n))\n"
            'import acnet_backbone\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('acnet_backbone.compat.IncompatibleStackError: '
                           'acnet_backbone cannot run on numpy 2.0.0')
    assert 'AttributeError' not in proc.stderr
