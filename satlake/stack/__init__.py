"""The native stack (Kafka, MinIO, Trino) without Docker: pinned installs, start, stop and health checks."""

from __future__ import annotations

from satlake.stack.config import SERVERS, StackConfig
from satlake.stack.errors import StackError
from satlake.stack.install import InstallToolMissing
from satlake.stack.lifecycle import (
    ServerStatus,
    format_status_table,
    install_servers,
    stack_down,
    stack_status,
    stack_up,
)

__all__ = [
    "SERVERS",
    "InstallToolMissing",
    "ServerStatus",
    "StackConfig",
    "StackError",
    "format_status_table",
    "install_servers",
    "stack_down",
    "stack_status",
    "stack_up",
]
