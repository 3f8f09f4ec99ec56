"""The modules of acnet_backbone import each other without a circle
(every import counted, those inside functions too)."""
import ast
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKG = 'acnet_backbone'


def _modules():
    """``{module name: file}`` of every module of the package."""
    found = {}
    for folder, _, files in os.walk(osp.join(ROOT, PKG)):
        for name in files:
            if name.endswith('.py'):
                rel = osp.relpath(osp.join(folder, name), ROOT)[:-3]
                parts = rel.split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                found['.'.join(parts)] = osp.join(folder, name)
    return found


def _imports(module: str, path: str, modules) -> set:
    """The package modules ``module`` imports: ``from a import b`` names the
    submodule ``a.b`` when it is one, else ``a``."""
    is_pkg = path.endswith('__init__.py')
    base = module.split('.') if is_pkg else module.split('.')[:-1]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                head = base[:len(base) - node.level + 1]
                target = '.'.join(head + ([node.module] if node.module
                                          else []))
            else:
                target = node.module or ''
            for alias in node.names:
                sub = f'{target}.{alias.name}'
                out.add(sub if sub in modules else target)
    return {m for m in out if m in modules and m != module}


def import_graph():
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def find_cycle(graph):
    """One import circle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == \
        ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_the_graph_is_read():
    graph = import_graph()
    # a function-level import counts as much as a module-level one
    assert 'acnet_backbone.deploy.end2end' in graph
    assert graph['acnet_backbone'] >= {'acnet_backbone.safe_load',
                                       'acnet_backbone.backbones'}


def test_no_import_circle_in_the_package():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, ' -> '.join(cycle)
