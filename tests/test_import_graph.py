"""The modules of acnet_backbone import each other without a circle
(every import counted: those inside functions, ``importlib.import_module``
/ ``__import__`` of a package module by its name, and the module names a
module-level ``__getattr__`` shim hands out), and the floors keep their
order (``deploy/`` never reaches up into ``study/``)."""
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
        elif isinstance(node, ast.Call):
            out.update(_string_imports(node, module, is_pkg))
        elif isinstance(node, ast.FunctionDef) and node.name == '__getattr__':
            # a compatibility shim: any package module it names is reached
            out.update(c.value for c in ast.walk(node)
                       if isinstance(c, ast.Constant) and
                       isinstance(c.value, str) and c.value in modules)
    return {m for m in out if m in modules and m != module}


def _string_imports(call: ast.Call, module: str, is_pkg: bool) -> set:
    """The module an ``import_module('...')`` / ``__import__('...')`` call
    names with a constant (relative names resolved against ``module``)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(
        func, 'id', None)
    if name not in ('import_module', '__import__') or not call.args or \
            not isinstance(call.args[0], ast.Constant) or \
            not isinstance(call.args[0].value, str):
        return set()
    target = call.args[0].value
    if target.startswith('.'):
        level = len(target) - len(target.lstrip('.'))
        base = module.split('.') if is_pkg else module.split('.')[:-1]
        head = base[:len(base) - level + 1]
        target = '.'.join(head + ([target.lstrip('.')]
                                  if target.lstrip('.') else []))
    return {target}


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


def test_string_imports_and_getattr_shims_are_edges(tmp_path):
    """A module reached only by name (importlib, or an old name a
    ``__getattr__`` shim keeps alive) is an import like any other."""
    path = tmp_path / 'shim.py'
    path.write_text(
        'import importlib\n'
        'def load():\n'
        '    return importlib.import_module("acnet_backbone.study.int8")\n'
        'def late():\n'
        '    return __import__(".runs", None)\n'
        'def __getattr__(name):\n'
        '    return {"x": "acnet_backbone.tiling"}[name]\n')
    modules = {m: None for m in ('acnet_backbone.study.int8',
                                 'acnet_backbone.study.runs',
                                 'acnet_backbone.tiling',
                                 'acnet_backbone.study.shim')}
    assert _imports('acnet_backbone.study.shim', str(path), modules) == {
        'acnet_backbone.study.int8', 'acnet_backbone.study.runs',
        'acnet_backbone.tiling'}


def test_deploy_never_imports_study():
    """``study/`` uses ``deploy/``, never the reverse: what both need
    lives in the lower floor."""
    graph = import_graph()
    up = sorted((m, t) for m, targets in graph.items()
                if m.startswith(f'{PKG}.deploy') for t in targets
                if t.startswith(f'{PKG}.study'))
    assert not up, up


def test_backends_do_not_import_the_pipeline():
    """A runtime's module knows the interface, the CPU and the shared
    detection measures, never the stages that use it."""
    graph = import_graph()
    allowed = (f'{PKG}.deploy.backends', f'{PKG}.deploy.detections',
               f'{PKG}.deploy.errors', f'{PKG}.errors')
    for module, targets in graph.items():
        if module.startswith(f'{PKG}.deploy.backends'):
            bad = [t for t in targets if not t.startswith(allowed)]
            assert not bad, (module, bad)
