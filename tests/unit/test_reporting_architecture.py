"""The CLI's layers: the errors and the report every command shares live below both ``satlake/cli.py`` and the
domains' command modules, so no domain imports the root CLI (which loads the domains)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "satlake"
SHARED_BELOW = ("satlake.cli_support", "satlake.reporting")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_domain_command_modules_never_import_the_root_cli() -> None:
    command_modules = sorted(PACKAGE.glob("*/commands.py"))
    assert {p.parent.name for p in command_modules} >= {"scenes", "telemetry", "serving"}
    for path in command_modules:
        assert "satlake.cli" not in imported_modules(path), path


def test_the_shared_cli_layers_import_neither_the_cli_nor_a_domain() -> None:
    domains = {p.name for p in PACKAGE.iterdir() if (p / "commands.py").is_file()}
    for path in [PACKAGE / "cli_support.py", *sorted((PACKAGE / "reporting").glob("*.py"))]:
        for module in imported_modules(path):
            assert module != "satlake.cli", path
            assert module.split(".")[1:2] not in ([d] for d in domains), (path, module)


def test_the_root_cli_reaches_errors_and_the_report_through_the_shared_layers() -> None:
    assert set(SHARED_BELOW) <= imported_modules(PACKAGE / "cli.py")


def test_resources_and_settings_import_no_domain() -> None:
    # Dependencies point one way: commands -> domains -> resources -> settings (run metrics, pushed by telemetry
    # and read by ops, therefore live in resources).
    domains = {p.name for p in PACKAGE.iterdir() if (p / "commands.py").is_file()}
    for path in [PACKAGE / "settings.py", *sorted((PACKAGE / "resources").glob("*.py"))]:
        for module in imported_modules(path):
            assert module.split(".")[1:2] not in ([d] for d in domains), (path, module)
