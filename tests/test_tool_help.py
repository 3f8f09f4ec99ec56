"""Every tool's ``--help``: its description is the whole first paragraph of
the tool's docstring and ends where a sentence ends, never mid-sentence."""
import ast
import glob
import os.path as osp
import re
import runpy
import sys

import pytest

from acnet_backbone.cli import doc_parts, tool_parser

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = sorted(p for p in glob.glob(osp.join(ROOT, 'tools', '*.py'))
               if 'ArgumentParser' in open(p, encoding='utf-8').read()
               or 'tool_parser' in open(p, encoding='utf-8').read())
HEADINGS = re.compile(r'^(positional arguments|options|optional arguments):$')
SENTENCE_END = re.compile(r'[.!?][)"\'`]*$')


def help_text(tool, monkeypatch, capsys) -> str:
    """What ``python TOOL --help`` prints, run in this process."""
    monkeypatch.setattr(sys, 'argv', [tool, '--help'])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(tool, run_name='__main__')
    assert exit_.value.code in (0, None)
    return capsys.readouterr().out


def description(help_out: str) -> str:
    """The description block of an argparse help text: after the usage
    lines, before the first argument heading."""
    lines = help_out.splitlines()
    start = next(i for i, ln in enumerate(lines) if not ln.strip())
    end = next((i for i, ln in enumerate(lines) if HEADINGS.match(ln)),
               len(lines))
    return '\n'.join(lines[start:end]).strip()


def flat(text: str) -> str:
    return ' '.join(text.split())


def test_tools_found():
    names = {osp.basename(t) for t in TOOLS}
    assert {'fuse.py', 'deploy.py', 'demo.py', 'train.py', 'test.py',
            'journey.py'} <= names


@pytest.mark.parametrize('tool', TOOLS, ids=osp.basename)
def test_help_description_is_whole(tool, monkeypatch, capsys):
    out = help_text(tool, monkeypatch, capsys)
    text = description(out)
    assert text, f'{osp.basename(tool)} --help has no description'
    assert SENTENCE_END.search(text), \
        f'{osp.basename(tool)} --help stops mid-sentence: ...{text[-70:]!r}'
    doc = ast.get_docstring(ast.parse(open(tool, encoding='utf-8').read()))
    first, _ = doc_parts(doc)
    assert SENTENCE_END.search(first), \
        f'{osp.basename(tool)}: its docstring opens with an unfinished ' \
        f'paragraph: ...{first[-70:]!r}'
    assert flat(first) in flat(out), \
        f'{osp.basename(tool)} --help does not give its docstring\'s first ' \
        'paragraph whole'


def test_tool_parser_keeps_the_docstring():
    doc = """Do one thing, and
    say so in two lines.

        python tools/x.py IN [--flag]

    Writes OUT.
    """
    first, rest = doc_parts(doc)
    assert first == 'Do one thing, and\nsay so in two lines.'
    assert rest == '    python tools/x.py IN [--flag]\n\nWrites OUT.'
    parser = tool_parser(doc, epilog='More.', prog='x.py')
    parser.add_argument('--flag', action='store_true')
    out = parser.format_help()
    assert description(out) == first
    assert out.rstrip().endswith('Writes OUT.\n\nMore.')
    assert '\n    python tools/x.py IN [--flag]\n' in out
    assert doc_parts(None) == ('', '')
    # a description cut after its first line is what the test above finds
    cut = tool_parser(doc.splitlines()[0], prog='x.py').format_help()
    assert not SENTENCE_END.search(description(cut))
