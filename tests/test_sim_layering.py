"""The simulator's modules form one-way layers a reader can see from the names.

wire_* -> cmd_* -> model_* -> chan_* -> plain modules; ``simulator`` and the
package ``__init__`` assemble them.  Every import counts, also the ones under
``TYPE_CHECKING`` and inside functions: a cycle hidden there is still a cycle
for a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

import esl_dialer.sim

SIM = Path(esl_dialer.sim.__file__).parent
TOP = {"__init__": 6, "simulator": 5}
PREFIX_RANK = {"wire_": 4, "cmd_": 3, "model_": 2, "chan_": 1}


def rank(module: str) -> int:
    if module in TOP:
        return TOP[module]
    for prefix, value in PREFIX_RANK.items():
        if module.startswith(prefix):
            return value
    return 0


def sim_imports(path: Path) -> set[str]:
    """Names of sibling modules ``path`` imports (relative or absolute), anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("esl_dialer.sim."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("esl_dialer.sim."):
                    found.add(alias.name.split(".")[2])
    return found


def graph() -> dict[str, set[str]]:
    return {path.stem: sim_imports(path) for path in SIM.glob("*.py")}


def test_every_module_belongs_to_a_layer_by_its_name():
    plain = sorted(m for m in graph() if rank(m) == 0)
    assert plain == ["config", "dialstring", "events", "plans", "testing", "timing"], plain


def test_imports_only_go_down_the_layers():
    g = graph()
    # plain modules are leaves; the one exception: one may use another that imports nothing
    # of the simulator (config.py holds timing.py's TimingConfig)
    upward = [(m, dep) for m, deps in g.items() for dep in deps
              if rank(dep) > rank(m) or (rank(dep) == rank(m) and rank(m) == 0 and dep != m and g.get(dep))]
    assert upward == []


def test_no_import_cycle_inside_a_layer():
    g = graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in g.get(node, ()):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [node, dep]))
            if dep not in state:
                visit(dep, trail + [node])
        state[node] = 2

    for module in g:
        if module not in state:
            visit(module, [])
