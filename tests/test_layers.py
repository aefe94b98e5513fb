"""The package's folders are its layers: each imports only the layers below it, nothing imports in a
cycle, and imports inside functions are only for heavy optional dependencies, each with a comment."""
import ast
from pathlib import Path

import clipprefix

LAYERS = {"base": 0, "fast": 1, "core": 2, "data": 3, "training": 4, "evaluation": 4, "synthetic": 4, "apps": 5}
TOP = 6                                          # clipprefix/__init__.py, __main__.py, cli.py: the entry points
OPTIONAL = ("cv2", "wandb", "torch.utils.tensorboard", "pycocoevalcap")


def _imports(path: Path, package: str, modules: set[str]):
    """(imported module or external name, line, inside a function?, source line) for each import of a file;
    `from x import name` counts as importing x.name where that is a module."""
    source = path.read_text()
    tree, lines = ast.parse(source), source.splitlines()
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            mod = ".".join((parts[:len(parts) - node.level + 1] if node.level else []) + [node.module or ""]).strip(".")
            targets = {f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names}
        elif isinstance(node, ast.Import):
            targets = {a.name for a in node.names}
        else:
            continue
        for target in sorted(targets):
            yield target, node.lineno, id(node) in in_function, lines[node.lineno - 1]


def violations(root: Path) -> list[str]:
    """Every breach of the rules in the package at `root` (a folder named like the package)."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("").parts
        files[".".join((root.name, *rel)).removesuffix(".__init__")] = (path, rel)
    out, graph = [], {}
    for module, (path, rel) in files.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        level = LAYERS.get(rel[0], TOP) if len(rel) > 1 else TOP
        for target, line, local, text in _imports(path, package, set(files)):
            where = f"{path.relative_to(root.parent)}:{line}"
            if local and not (target.startswith(OPTIONAL) and "#" in text):
                out.append(f"{where}: function-level import of {target} (only optional dependencies, with a comment)")
            if target not in files or target == root.name:
                continue
            graph.setdefault(module, set()).add(target)
            layer = target.split(".")[1]
            if layer != rel[0] and LAYERS.get(layer, TOP) >= level:
                out.append(f"{where}: {module} ({rel[0]}) imports {target} ({layer}), which is not below it")

    def cycle_from(m, stack):
        for t in sorted(graph.get(m, ())):
            if t in stack:
                return stack[stack.index(t):] + [t]
            found = cycle_from(t, stack + [t])
            if found:
                return found
        return None
    return out + [f"import cycle: {' -> '.join(c)}" for m in sorted(graph) if (c := cycle_from(m, [m]))][:1]


def test_the_package_keeps_its_layers():
    assert violations(Path(clipprefix.__file__).parent) == []


def test_an_upward_import_or_a_cycle_is_caught(tmp_path):
    pkg = tmp_path / "clipprefix"
    for folder, source in {"base": "from ..apps import x\n", "apps": "from . import y\n"}.items():
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
        (pkg / folder / "x.py").write_text(source)
    (pkg / "apps" / "y.py").write_text("from . import x\n\ndef f():\n    import torch\n")
    found = violations(pkg)
    assert any("base/x.py:1" in v and "not below it" in v for v in found)
    assert any("function-level import of torch" in v for v in found)
    assert any(v.startswith("import cycle: clipprefix.apps.x -> clipprefix.apps.y -> clipprefix.apps.x") for v in found)
