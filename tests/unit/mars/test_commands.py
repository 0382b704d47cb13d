"""``satlake mars fetch`` and ``satlake mars status`` as a user runs them, through the CLI's own error handling."""

import argparse
import io
from pathlib import Path

import pytest

from satlake.cli import _dispatch
from satlake.mars.commands import add_mars_commands
from satlake.mars.request import parse_request
from satlake.reporting import Report
from satlake.resources import build_resources
from satlake.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path))
    monkeypatch.setenv("SATLAKE_MODE", "embedded")
    monkeypatch.delenv("SATLAKE_NASA_API_KEY", raising=False)
    monkeypatch.delenv("SATLAKE_MARS_ROVERS", raising=False)
    return Settings.from_env()


def run(*argv: str) -> tuple[int, str, str]:
    top = argparse.ArgumentParser(prog="satlake")
    add_mars_commands(top.add_subparsers(dest="command", required=True))
    args = top.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    args.report = Report(out, err, width=250)
    return _dispatch(args, args.report), out.getvalue(), err.getvalue()


def published(settings: Settings) -> list[bytes]:
    event_log = build_resources(settings).event_log
    if not event_log.partitions(settings.mars_topic):
        return []
    return [record.value for record in event_log.read(settings.mars_topic, {0: 0}, 100)]


def test_fetch_publishes_one_request_for_the_sol_range(settings: Settings) -> None:
    code, out, err = run("mars", "fetch", "--rover", "Curiosity", "--sols", "1000:1010")
    assert (code, err) == (0, "")
    (value,) = published(settings)
    request = parse_request(value)
    assert (request.rover, request.first_sol, request.last_sol, request.traverse) == ("curiosity", 1000, 1010, True)
    assert f"published request {request.request_id}: curiosity sols 1000..1010 on satlake.mars-requests" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--rover", "sojourner", "--sols", "1:2"), "unknown rover 'sojourner'"),
        (("--rover", "curiosity", "--sols", "10:5"), "--sols '10:5'"),
        (("--rover", "perseverance", "--sols", "90000:90001"), "is in the future"),
    ],
)
def test_fetch_refuses_bad_input_with_exit_2_and_publishes_nothing(
    settings: Settings, argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run("mars", "fetch", *argv)
    assert code == 2 and message in err and out == ""
    assert published(settings) == []


def test_status_of_an_empty_lake_lists_the_followed_rovers_and_the_budget(settings: Settings) -> None:
    code, out, err = run("mars", "status")
    assert (code, err) == (0, "")
    assert "curiosity" in out and "perseverance" in out and "opportunity" not in out
    assert "API requests in the last hour: 0 of SATLAKE_MARS_REQUEST_BUDGET=25 (DEMO_KEY)" in out
    code, _, err = run("mars", "status", "--rover", "zhurong")
    assert code == 2 and "unknown rover 'zhurong'" in err
