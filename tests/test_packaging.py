"""pyproject.toml declares every package the code imports, and the license it names is shipped."""
import ast
import importlib.metadata
import re
import sys
import tomllib

from conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r'[<>=!~;\[ ]', r, maxsplit=1)[0].lower().replace('_', '-') for r in requirements}


def _imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (REPO_ROOT / 'timm_ignore').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split('.')[0])
    return modules - set(sys.stdlib_module_names) - {'timm_ignore'}


def test_every_imported_package_is_declared():
    project = PYPROJECT['project']
    declared = _requirement_names(project['dependencies'])
    for extra in project['optional-dependencies'].values():
        declared |= _requirement_names(extra)
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_top_level_modules()):
        names = {d.lower().replace('_', '-') for d in distributions.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(names)
    assert not missing, f'imported but not declared in pyproject.toml: {missing}'
    assert {'pyyaml', 'numpy', 'pillow', 'torch', 'timm'} <= declared


def test_the_declared_license_file_is_the_apache_text():
    assert PYPROJECT['project']['license'] == 'Apache-2.0'
    text = (REPO_ROOT / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text and len(text) > 10_000  # the full text, not a pointer
