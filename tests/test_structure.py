"""The package's structure rules (issue 28), read from the source: no import cycle, no private name used
across modules, one training step, the tools apart from the concerns."""
import ast
from collections import defaultdict
from pathlib import Path

from crack_utils.paths import repo_root

PACKAGE = repo_root() / "crack_utils"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """``{module: modules of the package it imports}`` (top-level and inside functions alike) and every
    ``(importer, module.name)`` that imports a name starting with ``_`` from another module."""
    graph, private = defaultdict(set), []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    target = f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    if target in modules and target != name:
                        graph[name].add(target)
                    if alias.name.startswith("_") and f"{source}.{alias.name}" not in modules and source != name:
                        private.append((name, f"{source}.{alias.name}"))
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules and a.name != name)
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_and_no_private_name_across_modules():
    graph, private = import_graph(_modules())
    assert cycles(graph) == []
    assert private == []


def test_private_attributes_of_other_modules_are_not_reached_into():
    # `training._LossSum`-style use of another module's private name through the module object
    modules = _modules()
    short = {name.rsplit(".", 1)[-1] for name in modules}
    offenders = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in short
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                offenders.append(f"{name}: {node.value.id}.{node.attr}")
    assert offenders == []


def test_one_training_step():
    # forward, loss, backward, step: written once (training.train_step), taken by the training and the tools
    modules = [path.relative_to(PACKAGE.parent).as_posix() for path in PACKAGE.rglob("*.py")
               if ".backward(" in path.read_text()]
    assert modules == ["crack_utils/training.py"]


def test_the_concerns_do_not_import_the_tools():
    graph, _ = import_graph(_modules())
    reach = {m: sorted(t for t in targets if t.startswith("crack_utils.tools"))
             for m, targets in graph.items() if not m.startswith("crack_utils.tools")}
    assert {m: t for m, t in reach.items() if t} == {}


def _literals(path: Path):
    """Numeric constants (with their type) and all-string tuples/lists in a module's code (docstrings aside)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            yield (type(node.value).__name__, node.value)
        elif isinstance(node, (ast.Tuple, ast.List)) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            yield ("names", tuple(e.value for e in node.elts))


def test_each_default_is_defined_once():
    # the paper's numbers live in paper.py, the distance maps' radius in distance.py; everything else imports
    # them (the far-FP threshold of claims.py is its own named fact, drawn at the same 20 px)
    owners = {("float", 4.0): {"paper.py"},                                  # alpha (Eq. 3)
              ("float", 5e-4): {"paper.py"},                                 # Adam's learning rate
              ("int", 128): {"paper.py", "model.py"},                        # image size; a decoder width
              ("float", 20.0): {"distance.py", "claims.py"},                 # radius; far-FP threshold
              ("names", ("bce", "dice", "distance")): {"paper.py"}}          # Table 1's losses
    found = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for literal in _literals(path):
            if literal in owners:
                found[literal].add(path.name)
    assert {k: sorted(v) for k, v in found.items() if not v <= owners[k]} == {}
    assert all(found[k] for k in owners)  # the owners do hold them


def test_run_paths_are_built_only_by_the_layout():
    # a path-like string naming a stage folder, a checkpoints folder or results/ outside study/layout.py
    # means a run path built by hand (messages and help texts, which hold spaces, are not paths)
    import re

    folder = re.compile(r"\b(01_data|02_distance|03_train|04_evaluate|05_report|06_generalization)\b"
                        r"|(^|/)checkpoints(/|$)|^results(/|$)|^(prepared\.npz|run_metadata\.json|report\.html)$"
                        r"|^-seed$")
    allowed = {("training.py", "checkpoints"),  # train()'s own default beside out_dir, when called without a study
               ("data_source.py", "-seed"),  # a synthetic data folder's name (n<N>-s<size>-seed<k>), not a run tag
               ("freshness.py", "run_metadata.json")}  # freshness.METADATA: the file that makes a run folder a run
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "layout.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and not re.search(r"\s", node.value) and folder.search(node.value)
                    and not node.value.startswith("notebooks/") and (path.name, node.value) not in allowed):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value!r}")
    assert found == []
