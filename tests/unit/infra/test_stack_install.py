"""Installing servers: archive unpacking, the no-op second install, clear errors, Java discovery."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from satlake.stack.errors import StackError
from satlake.stack.install import (
    InstallToolMissing,
    extract_server_tarball,
    install_kafka,
    install_minio,
    kafka_install_dir,
    run_tool,
    unpack_plugin_zip,
)
from satlake.stack.java import find_java, parse_java_version


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def test_server_tarball_loses_its_top_directory_and_unwanted_plugins(tmp_path: Path) -> None:
    archive = tmp_path / "trino-server-476.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "trino-server-476/bin/launcher", b"#!/bin/sh\n", mode=0o755)
        add_file(tar, "trino-server-476/lib/trino-main.jar")
        add_file(tar, "trino-server-476/plugin/delta-lake/delta.jar")
        add_file(tar, "trino-server-476/plugin/geospatial/geo.jar")
        add_file(tar, "trino-server-476/plugin/hive/hive.jar")
    server = tmp_path / "server"
    extract_server_tarball(archive, server, keep_plugins=frozenset({"delta-lake", "geospatial"}))
    assert sorted(p.name for p in (server / "plugin").iterdir()) == ["delta-lake", "geospatial"]
    assert (server / "lib" / "trino-main.jar").is_file()
    assert stat.S_IMODE((server / "bin" / "launcher").stat().st_mode) & stat.S_IXUSR


def test_server_tarball_without_launcher_is_reported_as_corrupt(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "trino-server-476/lib/trino-main.jar")
    with pytest.raises(StackError, match="did not contain bin/launcher"):
        extract_server_tarball(archive, tmp_path / "server", keep_plugins=frozenset())


def test_plugin_zip_jars_land_flat_in_the_plugin_directory(tmp_path: Path) -> None:
    archive = tmp_path / "trino-delta-lake-476.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("trino-delta-lake-476/", "")
        zipped.writestr("trino-delta-lake-476/trino-delta-lake-476.jar", b"a")
        zipped.writestr("trino-delta-lake-476/lib/delta-kernel.jar", b"b")
        zipped.writestr("trino-delta-lake-476/README.txt", b"c")
    plugin_dir = tmp_path / "plugin" / "delta-lake"
    assert unpack_plugin_zip(archive, plugin_dir) == 2
    assert sorted(p.name for p in plugin_dir.iterdir()) == ["delta-kernel.jar", "trino-delta-lake-476.jar"]


def test_second_install_is_a_no_op_that_needs_no_build_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = kafka_install_dir(tmp_path)
    (installed / "lib").mkdir(parents=True)
    (installed / ".installed").write_text("done\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    messages: list[str] = []
    assert install_kafka(tmp_path, tmp_path / "install.log", messages.append) == installed / "lib"
    assert messages == []


def test_missing_build_tool_is_named_with_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(InstallToolMissing, match=r"`go` is not on PATH.*Install Go 1\.24"):
        install_minio(tmp_path, tmp_path / "install.log", lambda _message: None)
    assert not any(tmp_path.glob("minio-*"))


def test_failed_tool_names_what_failed_shows_its_output_and_what_to_do(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "install-demo.log"
    with pytest.raises(StackError) as failed:
        run_tool(
            ["sh", "-c", "echo 'Could not resolve artifact x:y:1'; exit 3"],
            what="downloading x:y:1",
            log_file=log_file,
            progress=lambda _message: None,
            hint="Check that Maven Central is reachable.",
        )
    message = str(failed.value)
    assert message.startswith("downloading x:y:1 failed (exit code 3)")
    assert "Could not resolve artifact x:y:1" in message
    assert message.endswith("Check that Maven Central is reachable.")
    assert "Could not resolve artifact" in log_file.read_text()


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ('JAVA_VERSION="25.0.1"', 25),
        ('JAVA_VERSION="17.0.15"', 17),
        ('openjdk version "1.8.0_392"', 8),
        ('openjdk version "24" 2025-03-18', 24),
        ("no version here", None),
    ],
)
def test_java_versions_are_parsed_from_release_files_and_version_output(text: str, version: int | None) -> None:
    assert parse_java_version(text) == version


def fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    os.chmod(java, 0o755)
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_kafka_gets_the_oldest_suitable_jdk_and_trino_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("satlake.stack.java.JVM_ROOTS", (tmp_path,))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    jdk11, jdk17, jdk25 = (fake_jdk(tmp_path, f"jdk-{v}", f"{v}.0.1") for v in (11, 17, 25))
    assert find_java(17, prefer_lowest=True) == (jdk17.resolve(), 17)
    assert find_java(24, prefer_lowest=False) == (jdk25.resolve(), 25)
    assert find_java(26, prefer_lowest=False) is None
    assert jdk11.exists()
