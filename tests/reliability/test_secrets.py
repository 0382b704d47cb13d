"""No credentials in the repository; credentials come from the environment or a git-ignored secrets file, and
stack mode without them fails with an error naming the variables and the file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from satlake.resources import build_resources
from satlake.settings import Mode, Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]

# Patterns for credentials as they appear when pasted into code or config (values, not variable names).
CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key block": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "secret assigned a literal value": re.compile(
        r"""(?i)\b(?:[A-Z0-9_]*SECRET(?:_ACCESS)?_KEY|[A-Z0-9_]*PASSWORD)\s*[=:]\s*"""
        r"""["']?(?!\$|\{|<|\*|changeme|example|placeholder|none|null|""|''|\s|$)[A-Za-z0-9/+=_-]{12,}"""
        r"""(?=["'\s,;#]|$)"""  # a literal ends the value; a call such as generate_credentials() is code
    ),
    "generic API token": re.compile(r"\b(?:ghp|gho|github_pat|xox[abp])_[A-Za-z0-9_]{20,}\b"),
}


def tracked_text_files() -> list[Path]:
    # Tracked files plus new files not ignored: a credential is caught before it is ever committed.
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(command, cwd=REPO, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [REPO / name for name in listed.stdout.decode().split("\0") if name]
    return [path for path in paths if path.is_file() and path.stat().st_size < 2_000_000]


def credential_findings(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []  # binary files (rasters, parquet) are not where credentials get pasted
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, pattern in CREDENTIAL_PATTERNS.items():
            if pattern.search(line):
                findings.append(f"{path.relative_to(REPO)}:{number}: {name}")
    return findings


def test_no_tracked_file_holds_a_credential() -> None:
    files = tracked_text_files()
    assert len(files) > 50, "git ls-files should list the repository"
    findings = [finding for path in files for finding in credential_findings(path)]
    assert findings == [], "credentials in tracked files:\n" + "\n".join(findings)


@pytest.mark.parametrize(
    "line",
    [
        # Assembled from parts so this file does not itself hold what the scanner looks for.
        "AWS_ACCESS_KEY_ID=" + "AKIA" + "IOSFODNN7EXAMPLE",
        "SATLAKE_S3_SECRET" + "_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY",
        "MINIO_ROOT_PASS" + "WORD: 'hunter2hunter2hunter2'",
        "SATLAKE_MINIO_ROOT_PASS" + "WORD=Zm9vYmFyYmF6cXV4cXV1eA",
        "SATLAKE_TRINO_S3_SECRET" + "_KEY: 'wJalrXUtnFEMIK7MDENGbPxRfiCY'",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
    ],
)
def test_the_scanner_finds_planted_credentials(tmp_path: Path, line: str) -> None:
    planted = REPO / "tests" / "reliability" / f".planted-{os.getpid()}.txt"
    try:
        planted.write_text(f"# config\n{line}\n")
        assert credential_findings(planted), line
    finally:
        planted.unlink(missing_ok=True)


def test_the_scanner_ignores_references_to_variables() -> None:
    planted = REPO / "tests" / "reliability" / f".planted-{os.getpid()}.txt"
    try:
        planted.write_text('SECRET_KEY=${SATLAKE_S3_SECRET_KEY}\nsecret_key = settings.s3_secret_key\nPASSWORD=""\n')
        assert credential_findings(planted) == []
    finally:
        planted.unlink(missing_ok=True)


def test_secrets_files_are_git_ignored() -> None:
    for candidate in ("secrets.env", ".satlake/secrets.env", "deploy/prod.secrets.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", candidate], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{candidate} is not git-ignored"


def stack_environment(root: Path) -> dict[str, str]:
    return {"SATLAKE_MODE": "stack", "SATLAKE_ROOT": str(root)}


def test_stack_mode_without_credentials_names_the_variables_and_the_secrets_file(tmp_path: Path) -> None:
    settings = Settings.from_env(stack_environment(tmp_path))
    assert settings.mode is Mode.STACK and settings.s3_access_key is None
    # Settings load lazily (`satlake stack up` must run before credentials exist); the first use refuses.
    with pytest.raises(SettingsError) as caught:
        build_resources(settings)
    message = str(caught.value)
    assert "SATLAKE_S3_ACCESS_KEY" in message and "SATLAKE_S3_SECRET_KEY" in message
    assert str(tmp_path / "secrets.env") in message and "satlake stack up" in message


def test_credentials_are_read_from_the_secrets_file_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "secrets.env").write_text("# written by satlake stack up\nSATLAKE_S3_ACCESS_KEY=from-file\n"
                                          "export SATLAKE_S3_SECRET_KEY='file-secret'\n")  # fmt: skip
    from_file = Settings.from_env(stack_environment(tmp_path))
    assert from_file.require_s3_credentials() == ("from-file", "file-secret")
    from_env = Settings.from_env({**stack_environment(tmp_path), "SATLAKE_S3_ACCESS_KEY": "from-env"})
    assert from_env.require_s3_credentials() == ("from-env", "file-secret")


def test_the_cli_in_stack_mode_without_credentials_exits_2_without_a_traceback(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SATLAKE_")}
    environment.update(stack_environment(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "satlake", "search", "--stack"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "SATLAKE_S3_SECRET_KEY" in done.stderr and "secrets.env" in done.stderr
    assert "secret" not in done.stdout.lower()
