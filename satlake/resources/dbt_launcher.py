"""The dbt executable satlake's ``DbtCliResource`` runs: dbt's own command line, except that ``dbt --version`` is
answered from the installed packages' metadata.

dagster-dbt asks ``dbt --version`` at the start of every run to choose between its dbt Core and dbt Fusion code
paths. dbt answers by importing the whole of dbt-core (3 to 4 s of CPU on the benchmark machine, in every
curated run) and by asking the package index for the latest release: a network round trip a pipeline run
should not make, and a wait on a machine without one.
"""

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

EXECUTABLE_NAME = "satlake-dbt"  # the console script (pyproject.toml) that runs main()
VERSIONED_PACKAGES = {"Core": "dbt-core", "duckdb": "dbt-duckdb"}


def version_report() -> str:
    """What ``dbt --version`` prints about the installed packages, in its layout (dagster-dbt reads the first
    ``x.y.z`` in it as dbt-core's version), without the index lookup."""
    core = version(VERSIONED_PACKAGES["Core"])
    try:
        plugin = f"\n\nPlugins:\n  - duckdb: {version(VERSIONED_PACKAGES['duckdb'])}"
    except PackageNotFoundError:
        plugin = ""
    return f"Core:\n  - installed: {core}{plugin}"


def dbt_executable() -> str:
    """The launcher installed beside this Python, or plain ``dbt`` when satlake is not installed as a package
    (the same commands, only the version check is slower)."""
    launcher = Path(sys.executable).with_name(EXECUTABLE_NAME)
    return str(launcher) if launcher.is_file() else "dbt"


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(version_report())
        sys.exit(0)
    from dbt.cli.main import cli

    sys.exit(cli())


if __name__ == "__main__":
    main()
