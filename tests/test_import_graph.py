"""The package's import graph, read from the source (``ast``): no cycle, and dependencies point one way.

cli -> {hub, train, engine, figures} -> runs -> {checkpoint, evaluate, paper, ...} -> models -> convert -> layers.
The trainers and ``hub`` import neither each other; imports inside functions count (they hide cycles, not remove
them). An import inside a function is allowed only for an optional dependency or import time, and says which in a
comment.
"""
import ast
import io
import pathlib
import tokenize

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'timm_ignore'
#: The layer of each unit (a subpackage, or a module at the package root); a unit imports only from lower layers,
#: or from its own unit. Units on one layer that are not listed in SHARED_LAYERS must not import each other.
LAYERS = {
    'cli': 6,
    'hub': 5, 'train': 5, 'engine': 5, 'figures': 5,
    'runs': 4,
    'checkpoint': 3, 'evaluate': 3, 'paper': 3, 'dataset_tags': 3, 'provenance': 3, 'devices': 3, 'data': 3,
    'host_memory': 3, 'autocast_speed': 3, 'staging': 3, 'settings': 3, 'version': 3,
    'models': 2,
    'convert': 1,
    'layers': 0,
}
#: Layers whose units may import one another (small shared helpers), as long as there is no cycle.
SHARED_LAYERS = {3}
#: Units that import nothing of the package's outside the graph rules: the package's own ``__init__``.
EXEMPT = {'__init__'}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: pathlib.Path, known: set[str]) -> set[tuple[str, bool]]:
    """The package modules ``path`` imports (module or its package), with whether the import is inside a function."""
    name = _module_name(path)
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            targets = [f'{module}.{a.name}' for a in node.names] + [module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition('.')[0]
            if target.startswith('timm_ignore.') and target != name:
                found.add((target, node.col_offset > 0))
                break
    return found


def _graph() -> dict[str, set[tuple[str, bool]]]:
    paths = [p for p in PACKAGE.rglob('*.py') if 'weights_cards' not in p.parts]
    known = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, known) for p in paths}


def _unit(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def test_every_unit_has_a_layer():
    assert {_unit(m) for m in _graph()} - EXEMPT <= set(LAYERS), 'a new subpackage or root module: give it a layer'


def test_dependencies_point_one_way():
    wrong = []
    for module, targets in _graph().items():
        unit = _unit(module)
        if unit in EXEMPT:
            continue
        for target, _ in targets:
            other = _unit(target)
            if other == unit or other in EXEMPT:
                continue
            lower = LAYERS[other] < LAYERS[unit]
            shared = LAYERS[other] == LAYERS[unit] and LAYERS[unit] in SHARED_LAYERS
            if not (lower or shared):
                wrong.append(f'{module} -> {target}')
    assert not wrong, 'imports against the layering: ' + ', '.join(sorted(wrong))


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    state, stack = {}, []

    def visit(node: str) -> list[str]:
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 'open':
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 'done'
        stack.pop()
        return []
    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


@pytest.mark.parametrize('level', ['module', 'unit'])
def test_no_import_cycle(level):
    key = (lambda m: m) if level == 'module' else _unit
    edges: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        if _unit(module) in EXEMPT:
            continue
        edges.setdefault(key(module), set()).update(
            key(t) for t, _ in targets if key(t) != key(module) and _unit(t) not in EXEMPT)
    assert not _cycle(edges), ' -> '.join(_cycle(edges))


def test_run_layers_import_nothing_inside_functions():
    """The trainers, ``runs`` and ``hub`` import the package at module level, where a cycle would show."""
    hidden = [f'{m} -> {t}' for m, targets in _graph().items() for t, in_function in targets
              if in_function and _unit(m) in ('runs', 'train', 'engine', 'hub')]
    assert not hidden, ', '.join(hidden)


def test_the_checker_sees_a_cycle_and_a_wrong_direction():
    assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert not _cycle({'a': {'b'}, 'b': {'c'}})
    graph = _graph()
    assert ('timm_ignore.runs.report', False) in graph['timm_ignore.hub.zoo_publish'] or any(
        t.startswith('timm_ignore.runs') for t, _ in graph['timm_ignore.hub.zoo_publish'])
    assert any(t == 'timm_ignore.checkpoint' for t, _ in graph['timm_ignore.runs.scoring'])


def _unexplained_function_imports(source: str) -> list[int]:
    """Lines of imports inside a function with no ``#`` comment on their line nor on the line just above."""
    commented = {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
                 if token.type == tokenize.COMMENT}
    return sorted({sub.lineno for node in ast.walk(ast.parse(source))
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))
                   and not {sub.lineno, sub.lineno - 1} & commented})


def test_every_import_inside_a_function_says_why():
    """Optional dependencies and import time are the only reasons for an import inside a function; each says which."""
    unexplained = [f'{path.relative_to(PACKAGE.parent)}:{line}' for path in sorted(PACKAGE.rglob('*.py'))
                   for line in _unexplained_function_imports(path.read_text())]
    assert not unexplained, 'imports inside functions without a reason comment: ' + ', '.join(unexplained)


def test_the_checker_sees_an_unexplained_import():
    source = (
        'import os\n'
        'def f():\n'
        '    import json\n'
        '    import yaml  # optional\n'
        '    x = "#"\n'
        '    import csv\n'
        '    # import time\n'
        '    from . import heavy\n'
        '    class C:\n'
        '        def g(self):\n'
        '            import re\n'
    )
    assert _unexplained_function_imports(source) == [3, 6, 11]
