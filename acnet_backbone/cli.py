"""What the command-line tools in ``tools/`` share: a parser whose ``--help``
text is the tool's own module docstring.

A tool's docstring opens with one paragraph that says what the tool does,
then its usage lines and what it writes. :func:`tool_parser` makes the first
paragraph, whole, the parser's description and the rest its epilog, both
printed as written (the usage lines keep their indentation).

Example:
    >>> from acnet_backbone.cli import doc_parts
    >>> doc_parts('''Fuse a model and
    ... check it.
    ...
    ...     python tools/fuse.py CONFIG CHECKPOINT
    ... ''')
    ('Fuse a model and\\ncheck it.', '    python tools/fuse.py CONFIG CHECKPOINT')
"""
import argparse
import inspect
from typing import Optional, Tuple


def doc_parts(doc: Optional[str]) -> Tuple[str, str]:
    """Split a module docstring into its first paragraph and the rest.

    Args:
        doc (str, optional): the docstring (``__doc__``); None gives two
            empty strings.

    Returns:
        tuple[str, str]: the first paragraph (every line of it, up to the
        first blank line) and the text after it, both dedented, without
        leading or trailing blank lines.
    """
    text = inspect.cleandoc(doc or '')
    first, _, rest = text.partition('\n\n')
    return first.strip(), rest.strip('\n').rstrip()


def tool_parser(doc: Optional[str],
                epilog: Optional[str] = None,
                **kwargs) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` for a tool, its help text taken from ``doc``.

    Args:
        doc (str, optional): the tool's module docstring. Its first
            paragraph becomes the description; the rest (usage lines, what
            the tool writes) the epilog.
        epilog (str, optional): more text, printed after the docstring's
            rest. Defaults to None.
        **kwargs: other ``argparse.ArgumentParser`` arguments. The
            ``formatter_class`` defaults to
            ``argparse.RawDescriptionHelpFormatter`` so that the docstring's
            line breaks and indented usage lines are kept.

    Returns:
        argparse.ArgumentParser: the parser, no argument added yet.
    """
    description, rest = doc_parts(doc)
    kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
    tail = '\n\n'.join(part for part in (rest, epilog) if part)
    return argparse.ArgumentParser(description=description or None,
                                   epilog=tail or None, **kwargs)
