"""The backend boundary: the protocol every backend implements, the same
signatures in every backend package, a backend written outside the project,
and an import graph in which the core never reaches into a backend."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import toy_backend

import lazyshape as ls
from lazyshape.backend import check_backend, get_backend

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.torch),
            pytest.param("jax", marks=pytest.mark.jax)]


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_implements_the_protocol(name):
    check_backend(get_backend(name))


def test_the_protocol_check_names_what_is_missing():
    class Half:
        name = "half"
        array_modules = ()
        order = 1

        def available(self):
            return True

        def build(self, model):  # the protocol's build takes (model, config)
            return None

    with pytest.raises(AssertionError) as e:
        check_backend(Half())
    text = str(e.value)
    assert "no method `ops`" in text and "no method `to_numpy`" in text
    assert "`build(model)`; the protocol has `build(self, model: 'Any', config: 'Any')" in text


def _public_functions(module) -> dict[str, inspect.Signature]:
    names = getattr(module, "__all__", None) or []
    return {
        n: inspect.signature(getattr(module, n))
        for n in names
        if inspect.isfunction(getattr(module, n))
    }


@pytest.mark.torch
@pytest.mark.jax
def test_modules_of_the_same_name_have_the_same_public_signatures_in_every_backend():
    """Every module that two backend packages both have (``ops``, ``init``, the
    families' op modules: ``conv``, ``pool``, ...) exports the same functions
    with the same full signatures."""
    packages = {name: f"lazyshape_{name}" for name in ls.backends()}
    modules: dict[str, dict[str, object]] = {}
    for backend, package in packages.items():
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            modules.setdefault(info.name, {})[backend] = importlib.import_module(
                f"{package}.{info.name}"
            )
    compared = 0
    for name, by_backend in sorted(modules.items()):
        if len(by_backend) < 2 or name == "model":  # (each backend's own built model: below)
            continue
        signatures = {b: _public_functions(m) for b, m in by_backend.items()}
        reference_backend, reference = next(iter(signatures.items()))
        for backend, sig in signatures.items():
            assert sig == reference, (
                f"{name}: {backend} differs from {reference_backend}: "
                f"{set(sig.items()) ^ set(reference.items())}"
            )
        compared += len(reference)
    assert {"ops", "init", "conv", "pool", "attention", "recurrent"} <= set(modules)
    # the op protocol twice (ops, and the family modules it re-exports), the init protocol,
    # the sharded checkpoint's save and load
    assert compared == 2 * len(ls.backend.OPS) + 3 + 2
    for backend, module in modules["model"].items():  # one built model, on the shared base
        built = [getattr(module, n) for n in module.__all__
                 if inspect.isclass(getattr(module, n))
                 and issubclass(getattr(module, n), ls.backend.BuiltModel)]
        assert len(built) == 1, backend
        for method in ("materialize", "state_dict", "load_state_dict"):
            assert callable(getattr(built[0], method, None)), (backend, method)


@pytest.fixture
def toy():
    ls.backend.register_backend(toy_backend.BACKEND)
    try:
        yield toy_backend.BACKEND
    finally:
        ls.backend.unregister_backend("toy")


def test_a_backend_written_outside_the_project_runs_the_mlp(toy):
    check_backend(toy)
    assert "toy" in ls.backends() and ls.backends()[0] == "numpy"
    net = ls.Sequential(ls.Linear(16), ls.ReLU(), ls.Linear(3))
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    m = ls.build(net, "toy", rng="portable", seed=3)
    assert not m.initialized
    assert str(m.state_dict()["0.weight"]) == "<Uninitialized (16, ?) float32>"
    y = m(x)
    assert m.initialized and y.shape == (4, 3) and y.dtype == np.float32
    assert repr(m).splitlines()[1] == "  (0): Linear(in_features=5, out_features=16, bias=True)"
    # the same weights as any backend's portable init; the same function as NumPy's model
    ref = ls.build(net, "numpy", rng="portable", seed=3)
    want = ref(x)
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, ref.state_dict()[name])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ls.ShapeError, match=r"Linear at '0'"):
        m(np.zeros((4, 6), np.float32))  # parameters are materialized for 5 input features


# -- the import graph ------------------------------------------------------------------


def _imports(path: Path, package: str) -> set[str]:
    """Every module a file imports, at any depth of its code (function-level
    imports too), as absolute names."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            for a in node.names:  # `from . import ops` imports the submodule
                found.add(f"{mod}.{a.name}")
    return found


def _core_graph() -> dict[str, set[str]]:
    core = ROOT / "lazyshape"
    modules: dict[str, Path] = {}
    for path in core.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imports(path, package)
    return graph


def test_the_core_never_imports_a_backend_or_a_framework():
    graph = _core_graph()
    for module, imports in graph.items():
        if module.startswith("lazyshape.testing"):  # the harness's oracles are frameworks' own
            continue
        bad = {i for i in imports if i.split(".")[0] in ("torch", "jax", "jaxlib", "flax")
               or i.split(".")[0].startswith("lazyshape_")}
        assert not bad, f"{module} imports {sorted(bad)}"
    for module, imports in graph.items():  # the harness: frameworks yes, backends never
        bad = {i for i in imports if i.split(".")[0].startswith("lazyshape_")}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_the_core_import_graph_has_no_circle():
    graph = _core_graph()
    internal = {m: {i for i in imps if i in graph and i != m} for m, imps in graph.items()}
    # a package's __init__ re-exporting its submodules is not a circle: leave out the
    # edge from a submodule up to its own package
    for module, imps in internal.items():
        imps -= {p for p in imps if module.startswith(p + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(internal[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if not state.get(n):
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(internal):
        if not state.get(m):
            visit(m)
