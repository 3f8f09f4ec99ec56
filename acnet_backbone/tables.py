"""The package's one markdown-table writer (the deploy report, the demo
summary and the benchmark print their tables with it)."""
from typing import Iterable, List, Sequence


def markdown_table(headers: Sequence[str],
                   rows: Iterable[Sequence]) -> List[str]:
    """The lines of a markdown table; cells are written with ``str``.

    Example:
        >>> markdown_table(['a', 'b'], [(1, 2)])
        ['| a | b |', '| --- | --- |', '| 1 | 2 |']
    """
    return (['| ' + ' | '.join(headers) + ' |',
             '| ' + ' | '.join('---' for _ in headers) + ' |'] +
            ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows])
