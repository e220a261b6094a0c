"""The pure packages perform no I/O and respect the package layering.

Imports are read with `ast`, not by importing, so nothing here runs the code.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

FORBIDDEN = frozenset(
    {
        "asyncio",
        "aiohttp",
        "sqlite3",
        "socket",
        "time",
        "os",
        "pathlib",
        "subprocess",
        "threading",
        "random",
        "select",
        "selectors",
        "ssl",
        "http",
        "urllib",
        "io",
    }
)

# The one module of the pure packages that may touch the filesystem, and how.
ALLOWED = {"ledger/keyfile.py": frozenset({"os", "pathlib"})}

# Which first-party packages each package must never import.
LAYERING = {
    "ledger": frozenset({"consensus", "node", "client"}),
    "consensus": frozenset({"node", "client"}),
    "client": frozenset({"node", "consensus"}),
}


def imported_modules(source: str, filename: str = "<test>") -> list[tuple[str, int]]:
    """Top-level names of absolute imports, with line numbers; relative imports are skipped."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


PURE_FILES = [*python_files("ledger"), *python_files("consensus")]
LAYERED_FILES = [path for package in LAYERING for path in python_files(package)]


def test_the_packages_are_found() -> None:
    names = {relative(path) for path in PURE_FILES}
    assert "ledger/encoding.py" in names
    assert "ledger/keyfile.py" in names
    assert "consensus/__init__.py" in names
    assert python_files("client")


@pytest.mark.parametrize("path", PURE_FILES, ids=relative)
def test_pure_module_imports_nothing_that_does_io(path: Path) -> None:
    name = relative(path)
    allowed = ALLOWED.get(name, frozenset())
    bad = [
        f"{name} imports {module} (line {line})"
        for module, line in imported_modules(path.read_text(), name)
        if module in FORBIDDEN and module not in allowed
    ]
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("path", LAYERED_FILES, ids=relative)
def test_package_does_not_import_a_higher_layer(path: Path) -> None:
    name = relative(path)
    banned = LAYERING[name.split("/")[0]]
    bad = [
        f"{name} imports {module} (line {line})"
        for module, line in imported_modules(path.read_text(), name)
        if module in banned
    ]
    assert not bad, "; ".join(bad)


def test_keyfile_is_the_only_exception_and_uses_only_os_and_pathlib() -> None:
    path = ROOT / "ledger" / "keyfile.py"
    modules = {module for module, _ in imported_modules(path.read_text())}
    assert modules & FORBIDDEN <= ALLOWED["ledger/keyfile.py"]


# --- the scanner itself -------------------------------------------------------------


def test_scanner_reports_top_level_names_of_dotted_imports() -> None:
    source = "import os.path\nimport urllib.request as r\nfrom http.client import HTTPConnection\n"
    assert imported_modules(source) == [("os", 1), ("urllib", 2), ("http", 3)]


def test_scanner_finds_imports_nested_in_functions_and_conditionals() -> None:
    source = (
        "def f():\n"
        "    import socket\n"
        "if True:\n"
        "    from time import monotonic\n"
        "try:\n"
        "    import asyncio\n"
        "except ImportError:\n"
        "    pass\n"
    )
    assert {module for module, _ in imported_modules(source)} == {"socket", "time", "asyncio"}


def test_scanner_ignores_relative_imports() -> None:
    source = "from . import io\nfrom .time import x\nfrom ..os import y\n"
    assert imported_modules(source) == []


def test_scanner_does_not_confuse_similar_names() -> None:
    source = "import timeit\nimport osmosis\nfrom iotools import x\nimport hashlib\n"
    names = {module for module, _ in imported_modules(source)}
    assert not names & FORBIDDEN
