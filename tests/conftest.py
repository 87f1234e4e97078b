"""Shared test configuration: hypothesis profiles chosen by HYPOTHESIS_PROFILE,
and the framework markers.

A test that needs torch, JAX or ONNX carries the marker of that framework
(``@pytest.mark.torch``, ``@pytest.mark.jax``, ``@pytest.mark.onnx``; on a
backend parameter, ``pytest.param("torch", marks=pytest.mark.torch)``); it is
skipped, with the reason, where the framework is not installed, so the suite
runs with NumPy alone (``make test-numpy-only``).

``LAZYSHAPE_REQUIRE_ALL=1`` (``make pytest``) makes a missing framework a
failure instead, and fails the session if any test was skipped at all, for any
reason: the full run must run everything."""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=1500,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config: pytest.Config) -> None:
    # transformers imports torchvision when it is installed; with the CPU build of
    # torch, torchvision imports only after its ops' schemas are declared (see
    # _reference.py), so that is done before any test imports either
    if importlib.util.find_spec("torchvision") and importlib.util.find_spec("torch"):
        from _reference import torchvision_models

        torchvision_models()


# -- framework markers -------------------------------------------------------------

#: marker -> the modules the framework needs (as lazyshape_jax's `available()`)
FRAMEWORKS = {"torch": ("torch",), "jax": ("jax", "jaxlib"), "onnx": ("onnx",)}

REQUIRE_ALL = os.environ.get("LAZYSHAPE_REQUIRE_ALL", "") == "1"


def _missing(framework: str) -> list[str]:
    return [m for m in FRAMEWORKS[framework] if importlib.util.find_spec(m) is None]


MISSING = {name: mods for name in FRAMEWORKS if (mods := _missing(name))}

#: why a collected test cannot run here (set under LAZYSHAPE_REQUIRE_ALL=1)
_CANNOT_RUN = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        absent = [name for name in FRAMEWORKS if name in MISSING and item.get_closest_marker(name)]
        if not absent:
            continue
        modules = ", ".join(m for name in absent for m in MISSING[name])
        if REQUIRE_ALL:
            reason = (f"needs {' and '.join(absent)}, not installed (no module {modules}); "
                      "LAZYSHAPE_REQUIRE_ALL=1 runs every test: install the `dev` extra")
            item.stash[_CANNOT_RUN] = reason
        else:
            reason = f"needs {' and '.join(absent)} (not installed: no module {modules})"
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    reason = item.stash.get(_CANNOT_RUN, None)
    if reason is not None:
        pytest.fail(reason, pytrace=False)


# -- LAZYSHAPE_REQUIRE_ALL=1: no test may be skipped ---------------------------------

_SKIPPED: list[tuple[str, str]] = []


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # an xfail is reported as skipped too (with `wasxfail`): expected, not skipped
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a whole module skipped (pytest.importorskip at import, ...)
        _SKIPPED.append((report.nodeid, _skip_reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    passing = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if REQUIRE_ALL and _SKIPPED and session.exitstatus in passing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not (REQUIRE_ALL and _SKIPPED):
        return
    tr = terminalreporter
    tr.section("LAZYSHAPE_REQUIRE_ALL=1: skipped tests fail the run", sep="=", red=True, bold=True)
    for nodeid, reason in _SKIPPED:
        tr.line(f"SKIPPED {nodeid}: {reason}", red=True)
    tr.line(f"{len(_SKIPPED)} skipped under LAZYSHAPE_REQUIRE_ALL=1 (every test must run)",
            red=True, bold=True)
