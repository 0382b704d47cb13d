"""The stack lifecycle on the real servers: health, idempotent `up`, credentials, and a taken port."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

import pytest

from satlake.settings import Settings
from satlake.stack import StackError, stack_status, stack_up
from satlake.stack.config import SERVERS
from satlake.stack.credentials import ACCESS_KEY_VAR, SECRET_KEY_VAR

pytestmark = pytest.mark.integration


def test_every_server_is_running_and_healthy(stack: Settings) -> None:
    statuses = {status.name: status for status in stack_status(stack)}
    assert sorted(statuses) == sorted(SERVERS)
    assert sorted(SERVERS) == [
        "alertmanager",
        "collector1",
        "collector2",
        "haproxy",
        "kafka",
        "minio",
        "postgres",
        "prometheus",
        "trino",
    ]
    for status in statuses.values():
        assert status.running and status.healthy, status
        assert status.pid is not None and Path(f"/proc/{status.pid}").exists()
    assert statuses["trino"].port == stack.trino_port
    assert statuses["trino"].detail.startswith("Trino 476")
    assert stack.kafka_bootstrap.endswith(f":{statuses['kafka'].port}")


def test_second_up_only_checks_health_and_keeps_the_same_processes(stack: Settings) -> None:
    before = {status.name: status.pid for status in stack_status(stack)}
    messages: list[str] = []
    started = time.monotonic()
    stack_up(stack, progress=messages.append)
    assert time.monotonic() - started < 30
    assert {status.name: status.pid for status in stack_status(stack)} == before
    assert sum("already running" in message for message in messages) == len(SERVERS)


def test_generated_credentials_are_private_and_never_printed(stack: Settings) -> None:
    secrets_file = stack.secrets_file
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    text = secrets_file.read_text()
    assert f"{ACCESS_KEY_VAR}={stack.s3_access_key}" in text
    assert f"{SECRET_KEY_VAR}={stack.s3_secret_key}" in text
    messages: list[str] = []
    stack_up(stack, progress=messages.append)
    assert stack.s3_secret_key and not any(stack.s3_secret_key in message for message in messages)
    for log in (stack.stack_home / "logs").glob("*.log"):
        assert stack.s3_secret_key not in log.read_text(errors="replace"), log


def test_up_names_the_taken_port_and_the_setting_that_moves_it(stack: Settings, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        other = stack.with_overrides(root=tmp_path, kafka_bootstrap=f"127.0.0.1:{port}")
        with pytest.raises(StackError) as raised:
            stack_up(other, servers=("kafka",), progress=lambda _message: None)
    message = str(raised.value)
    assert f"port {port} (broker)" in message
    assert "SATLAKE_KAFKA_BOOTSTRAP" in message
    assert not (tmp_path / "stack" / "run" / "kafka.pid").exists()
