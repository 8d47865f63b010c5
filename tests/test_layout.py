"""The direction of imports: the command line on top, then the benchmarks, then tools/, then the
package the notebooks import (utils/) at the bottom. Nothing imports a layer above it, and no two
modules of utils/ import each other, however indirectly (imports inside functions count too)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["course", "bench", "tools", "utils"]  # from the top down


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The course's own modules that ``path`` imports, anywhere in the file."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parent = package[:len(package) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            else:
                base = node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in LAYERS}


def sources() -> list[Path]:
    files = [ROOT / "course.py"] + sorted((ROOT / "bench").glob("*.py"))
    for package in ("tools", "utils"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def layer(name: str) -> int:
    return LAYERS.index(name.split(".")[0])


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{module_name(path)} imports {name}" for path in sources()
              for name in sorted(imports(path)) if layer(name) < layer(module_name(path))]
    assert upward == []


def test_the_modules_of_utils_import_each_other_in_no_circle():
    modules = {module_name(p): p for p in sorted((ROOT / "utils").rglob("*.py"))}
    graph = {}
    for name, path in modules.items():  # "utils.x.NAME" counts as utils.x when NAME is not a module
        graph[name] = {target if target in modules else target.rsplit(".", 1)[0]
                       for target in imports(path)} & set(modules) - {name}
    for name in graph:  # a package imports its own modules: that is not a circle
        if modules[name].name == "__init__.py":
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    circles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                circles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []
