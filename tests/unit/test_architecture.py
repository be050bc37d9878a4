"""The tree's shape (issue 13): the services look alike inside and point only into `shared/`.

Read from the source with `ast`, so a newcomer's first wrong import or a handler that grows a
use case inside it fails here, with the file and line named, before any review.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.services import SERVICES_AND_GATEWAY

ROOT = Path(__file__).resolve().parents[2]
# The project's own top-level packages: an import of one of these is an arrow inside the tree.
PROJECT = ("services", "shared", "tools", "testkit", "bench", "chaos", "tests")
# Every service package has these (translate: contract.py, load/write: store.py, decide: domain/,
# the handlers, the process's wiring, its schema).
CORE = (
    "__init__.py",
    "__main__.py",
    "app.py",
    "contract.py",
    "handlers.py",
    "store.py",
    "domain/__init__.py",
)
# What `domain/` (decide: pure functions over plain data) may import besides the standard library
# and its own package: the pure parts of shared/, lxml (pain.001 is built as a tree there) and
# schwifty (IBAN and BIC checks, no I/O).
PURE_SHARED = {
    "shared.money",
    "shared.text",
    "shared.envelope",
    "shared.authority",
    "shared.payment_terms",
    "shared.contracts",
}
PURE_THIRD_PARTY = {"lxml", "schwifty"}
# One handler: load → decide → write → emit, and no more (the issue: ~25 lines at most).
HANDLER_MAX_LINES = 25


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in a file; relative imports resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    return _imports_of(path.read_text(), package, str(path))


def _imports_of(source: str, package: str, filename: str = "<probe>") -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = node.module or ""
            name = f"{base}.{module}".strip(".") if node.level else module
            yield node.lineno, name
            if node.module is None or node.level:  # `from . import x`: x may be a module
                yield from ((node.lineno, f"{name}.{alias.name}") for alias in node.names)


def _python_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.py"))


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("service", SERVICES_AND_GATEWAY)
def test_every_service_has_the_same_core_files(service: str) -> None:
    package = ROOT / "services" / service
    missing = [name for name in CORE if not (package / name).is_file()]
    assert not missing, f"services/{service} lacks {missing}"
    assert (package / "migrations").is_dir(), f"services/{service} has no migrations/"


@pytest.mark.parametrize("service", SERVICES_AND_GATEWAY)
def test_a_service_imports_only_its_own_package_and_shared(service: str) -> None:
    own = f"services.{service}"
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _python_files(ROOT / "services" / service)
        for line, module in _imports(path)
        if module.split(".")[0] in PROJECT and not (_within(module, own) or _within(module, "shared"))
    ]
    assert not wrong, "\n".join(wrong)


def test_shared_imports_nothing_of_the_services_or_the_tools() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _python_files(ROOT / "shared")
        for line, module in _imports(path)
        if module.split(".")[0] in PROJECT and not _within(module, "shared")
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("service", SERVICES_AND_GATEWAY)
def test_a_services_domain_does_no_io(service: str) -> None:
    own = f"services.{service}.domain"
    wrong = []
    for path in _python_files(ROOT / "services" / service / "domain"):
        for line, module in _imports(path):
            top = module.split(".")[0]
            allowed = (
                (top in sys.stdlib_module_names and top not in {"asyncio", "socket", "subprocess", "sqlite3"})
                or top in PURE_THIRD_PARTY
                or _within(module, own)
                or any(_within(module, pure) for pure in PURE_SHARED)
            )
            if not allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("service", SERVICES_AND_GATEWAY)
def test_handlers_are_short(service: str) -> None:
    path = ROOT / "services" / service / "handlers.py"
    long = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        lines = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1 if body else 0
        if lines > HANDLER_MAX_LINES:
            long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "\n".join(long)


def test_the_import_reader_sees_relative_and_absolute_imports() -> None:
    """The checks above are only as good as `_imports`: it must see each form of import."""
    source = (
        "import shared.db\n"
        "from services.ledger import store\n"
        "from . import handlers\n"
        "from .domain import common\n"
        "from ..matching.domain import Roles\n"
        "def f():\n    import tools.cli\n"
    )
    found = {module for _, module in _imports_of(source, "services.intake")}
    assert {
        "shared.db",
        "services.ledger",
        "services.intake.handlers",
        "services.intake.domain",
        "services.matching.domain",
        "tools.cli",
    } <= found
