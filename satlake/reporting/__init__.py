"""The one reporting layer of the ``satlake`` CLI: what every command prints (``Report``: headings, lines,
tables, check and run results, progress bars on long work), and where everything else goes (``capture_output``:
dbt's log lines, Dagster's logs and library warnings, into a log file under the storage root)."""

from satlake.reporting.capture import CapturedOutput, capture_output, command_log_path
from satlake.reporting.report import Report

__all__ = ["CapturedOutput", "Report", "capture_output", "command_log_path"]
