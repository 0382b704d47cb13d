"""The dbt launcher answers ``--version`` the way dagster-dbt reads it, without importing dbt or asking the
package index, and is what the dbt resource runs."""

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from satlake.resources.dbt_launcher import EXECUTABLE_NAME, dbt_executable, version_report
from satlake.resources.dbt_project import build_dbt_resource
from satlake.settings import Settings


def test_version_report_names_dbt_core_first_as_dagster_dbt_parses_it() -> None:
    report = version_report()
    # dagster-dbt's DbtCliResource._cli_version takes the first x.y.z of the output as dbt-core's version.
    first = re.search(r"(\d+\.\d+\.\d+)", report)
    assert first is not None and first.group(1) == version("dbt-core")
    assert f"duckdb: {version('dbt-duckdb')}" in report


def test_the_installed_launcher_answers_version_without_importing_dbt() -> None:
    executable = dbt_executable()
    assert Path(executable).name == EXECUTABLE_NAME  # installed with the package (pyproject's console scripts)
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == version_report()
    probe = (
        "import sys\nsys.argv = ['satlake-dbt', '--version']\nfrom satlake.resources.dbt_launcher import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith('dbt')))"
    )
    modules = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert modules.strip().splitlines()[-1] == "[]"


def test_the_dbt_resource_runs_the_launcher(tmp_path: Path) -> None:
    resource = build_dbt_resource(Settings(root=tmp_path))
    assert resource.dbt_executable == dbt_executable()
