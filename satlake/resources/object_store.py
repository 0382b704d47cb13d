"""Object storage behind the landing area and the raw / COG / product / STAC zones: one interface, a local
directory implementation (embedded mode) and an S3 one (MinIO in stack mode).

Every key goes through ``validate_object_key`` before it touches a path or a request, so a key with ``..``,
control characters or absurd length can never escape the store's root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from satlake.resources.object_keys import validate_object_key
from satlake.settings import Mode, Settings

HASH_CHUNK_BYTES = 1 << 20


class ObjectStoreError(RuntimeError):
    """An object could not be read or written; the message names the store, the key and what to check."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as the store reports it after a write."""

    key: str
    size_bytes: int
    etag: str


class ObjectStore(ABC):
    """A flat namespace of objects addressed by relative keys (``raw/scenes/x/y.tif``)."""

    bucket: str
    # Whether the store itself publishes an object-created event for each upload (MinIO's bucket notification on
    # the landing bucket). When it does not, whoever uploads announces the object (``resources.object_events``).
    announces_uploads: bool = False

    @abstractmethod
    def put_file(self, path: Path, key: str) -> StoredObject:
        """Upload the local file ``path`` as ``key`` (replacing an existing object)."""

    @abstractmethod
    def get_to_path(self, key: str, path: Path) -> Path:
        """Download ``key`` into the local file ``path`` and return ``path``."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True when ``key`` names an object."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where the object lives for other tools: an absolute local path or ``s3://bucket/key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a no-op when it does not exist."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size of ``key`` in bytes, None when it does not exist."""

    def local_path(self, key: str) -> Path | None:
        """The object's own file when the store is a local directory (no copy needed), else None."""
        return None

    def key_for_uri(self, uri: str) -> str | None:
        """The key a ``uri()`` value names, or None when the URI is outside this store."""
        return None

    def exists_uri(self, uri: str) -> bool:
        key = self.key_for_uri(uri)
        return key is not None and self.exists(key)

    def sha256(self, key: str) -> str:
        """Hex sha256 of the object's bytes (downloaded in a temporary file when the store is remote)."""
        local = self.local_path(key)
        if local is not None:
            return _file_sha256(local)
        with tempfile.TemporaryDirectory(prefix="satlake-hash-") as scratch:
            return _file_sha256(self.get_to_path(key, Path(scratch) / "object"))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``: the key is the relative path. Writes go to a temporary file in the
    same folder and are renamed into place, so readers never see half an object."""

    def __init__(self, root: Path | str, bucket: str = "local") -> None:
        self.root = Path(root).resolve()
        self.bucket = bucket

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        safe = validate_object_key(key)
        path = self.root / safe
        if self.root not in path.parents:  # cannot happen for a validated key; refuse rather than trust it
            raise ObjectStoreError(f"object key {key!r} resolves outside {self.root}")
        return path

    def put_file(self, path: Path, key: str) -> StoredObject:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        try:
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise ObjectStoreError(f"cannot write {key!r} under {self.root} from {path}: {error}") from error
        return StoredObject(key=validate_object_key(key), size_bytes=target.stat().st_size, etag=_file_md5(target))

    def get_to_path(self, key: str, path: Path) -> Path:
        source = self._path(key)
        if not source.is_file():
            raise ObjectStoreError(f"object {key!r} does not exist under {self.root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for directory, _folders, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith((".partial", ".tmp")):
                    continue  # writes in progress are not objects yet
                key = (Path(directory) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def key_for_uri(self, uri: str) -> str | None:
        path = Path(uri.removeprefix("file://"))
        if not path.is_absolute():
            return None
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None


def _file_md5(path: Path) -> str:
    # S3's etag of a single-part upload is the MD5 of the bytes; the local store reports the same value.
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class S3ObjectStore(ObjectStore):
    """Objects in one S3 / MinIO bucket, through boto3 (path-style addressing, which MinIO needs)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str = "us-east-1",
        announces_uploads: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.announces_uploads = announces_uploads
        self._credentials = (access_key, secret_key)
        self.region = region
        self._client = None

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.endpoint!r}, bucket={self.bucket!r})"

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=self._credentials[0],
                aws_secret_access_key=self._credentials[1],
                region_name=self.region,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
            )
        return self._client

    def _error(self, action: str, key: str, error: Exception) -> ObjectStoreError:
        return ObjectStoreError(
            f"cannot {action} s3://{self.bucket}/{key} at {self.endpoint}: {error}. Check that the server runs "
            "(`satlake stack status`), the bucket exists and the credentials (SATLAKE_S3_*) are right."
        )

    def put_file(self, path: Path, key: str) -> StoredObject:
        safe = validate_object_key(key)
        try:
            self.client.upload_file(str(path), self.bucket, safe)
            head = self.client.head_object(Bucket=self.bucket, Key=safe)
        except Exception as error:
            raise self._error("write", safe, error) from error
        return StoredObject(key=safe, size_bytes=int(head["ContentLength"]), etag=str(head["ETag"]).strip('"'))

    def get_to_path(self, key: str, path: Path) -> Path:
        safe = validate_object_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, safe, str(path))
        except Exception as error:
            raise self._error("read", safe, error) from error
        return path

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        safe = validate_object_key(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=safe)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error("inspect", safe, error) from error
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(entry["Key"] for entry in page.get("Contents", []))
        except Exception as error:
            raise self._error("list", prefix + "*", error) from error
        return sorted(keys)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{validate_object_key(key)}"

    def delete(self, key: str) -> None:
        safe = validate_object_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=safe)
        except Exception as error:
            raise self._error("delete", safe, error) from error

    def key_for_uri(self, uri: str) -> str | None:
        prefix = f"s3://{self.bucket}/"
        return uri[len(prefix) :] if uri.startswith(prefix) else None

    def ensure_bucket(self) -> None:
        """Create the bucket when it is missing (MinIO starts empty)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)


@dataclass(frozen=True)
class SceneStores:
    """The two stores the scene path uses: where uploads land, and where satlake keeps what it derives."""

    landing: ObjectStore
    lake: ObjectStore


def build_scene_stores(settings: Settings) -> SceneStores:
    """Stores by mode: ``<root>/objects`` (landing under ``landing/``) embedded; two MinIO buckets in stack."""
    if settings.mode is Mode.STACK:
        access_key, secret_key = settings.require_s3_credentials()

        def bucket(name: str, announces_uploads: bool = False) -> S3ObjectStore:
            return S3ObjectStore(
                settings.s3_endpoint, access_key, secret_key, name, settings.s3_region, announces_uploads
            )

        # `satlake stack up` configures MinIO to announce every object created in the landing bucket on Kafka.
        landing = bucket(settings.landing_bucket, announces_uploads=True)
        return SceneStores(landing=landing, lake=bucket(settings.lake_bucket))
    objects = settings.root / "objects"
    return SceneStores(
        landing=LocalObjectStore(objects / "landing", bucket=settings.landing_bucket),
        lake=LocalObjectStore(objects, bucket=settings.lake_bucket),
    )
