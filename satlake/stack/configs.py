"""Configuration files of the native servers, rendered from StackConfig by pure functions.

Nothing here touches the disk: `satlake.stack.servers` writes these strings under the stack home, and the
Docker Compose files under ``infra/docker`` come from the same functions (a unit test keeps them equal).
"""

from __future__ import annotations

from pathlib import Path

from satlake.stack.access import trino_access_rules_json, trino_group_file
from satlake.stack.config import StackConfig
from satlake.stack.credentials import TRINO_ACCESS_KEY_VAR, TRINO_SECRET_KEY_VAR, KeyPair
from satlake.stack.versions import KAFKA_VERSION, LOG4J_VERSION

MINIO_NOTIFY_ID = "SATLAKE"
MINIO_KAFKA_QUEUE_ARN = f"arn:minio:sqs::{MINIO_NOTIFY_ID}:kafka"
TRINO_CATALOG = "lake"
METASTORE_PREFIX = "metastore"

_POM_DEPENDENCY = (
    "    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
    "<version>{version}</version></dependency>\n"
)


def properties(values: dict[str, object]) -> str:
    """Java ``.properties`` text, one ``key=value`` per line, in the given order."""
    return "".join(f"{key}={value}\n" for key, value in values.items())


def kafka_pom(kafka_version: str = KAFKA_VERSION, log4j_version: str = LOG4J_VERSION) -> str:
    """A pom whose runtime dependencies are exactly the broker's classpath (Kafka plus a log4j2 backend)."""
    dependencies = [
        ("org.apache.kafka", "kafka_2.13", kafka_version),
        ("org.apache.logging.log4j", "log4j-core", log4j_version),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", log4j_version),
    ]
    rendered = "".join(
        _POM_DEPENDENCY.format(group=group, artifact=artifact, version=version)
        for group, artifact, version in dependencies
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>satlake.stack</groupId>\n"
        "  <artifactId>kafka-broker-classpath</artifactId>\n"
        f"  <version>{kafka_version}</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n"
        f"{rendered}"
        "  </dependencies>\n"
        "</project>\n"
    )


def kafka_server_properties(config: StackConfig, data_dir: Path) -> str:
    """Single-node KRaft: one process is broker and controller, every internal topic has one replica.

    The quorum is static (``controller.quorum.voters``) rather than formatted with ``--standalone``: a static
    voter is read from this file on every start, so changing the controller port later needs no reformat.
    """
    broker = f"{config.kafka_host}:{config.kafka_port}"
    controller = f"{config.kafka_host}:{config.controller_port}"
    return properties(
        {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": data_dir,
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "auto.create.topics.enable": "true",
            "group.initial.rebalance.delay.ms": 0,
            # The lakehouse's raw zone is the durable copy; a week of broker retention covers outages.
            "log.retention.hours": 168,
        }
    )


def kafka_log4j2_properties() -> str:
    """Broker logging to stdout, which the stack redirects to logs/kafka.log."""
    return properties(
        {
            "status": "warn",
            "appender.console.type": "Console",
            "appender.console.name": "STDOUT",
            "appender.console.layout.type": "PatternLayout",
            "appender.console.layout.pattern": "[%d] %p %m (%c)%n",
            "rootLogger.level": "INFO",
            "rootLogger.appenderRef.stdout.ref": "STDOUT",
            # The controller and request loggers are very chatty at INFO.
            "logger.controller.name": "org.apache.kafka.controller",
            "logger.controller.level": "WARN",
            "logger.request.name": "kafka.request.logger",
            "logger.request.level": "WARN",
        }
    )


def kafka_jvm_options(config_file: Path) -> list[str]:
    return [
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config_file}",
    ]


def minio_environment(
    config: StackConfig, root: KeyPair, queue_dir: Path, kafka_brokers: str | None = None
) -> dict[str, str]:
    """MinIO's environment: its root user (provisioning only) and the Kafka notification target for landing."""
    target = MINIO_NOTIFY_ID
    return {
        "MINIO_ROOT_USER": root.access_key,
        "MINIO_ROOT_PASSWORD": root.secret_key,
        "MINIO_REGION": config.s3_region,
        "MINIO_UPDATE": "off",
        "MINIO_BROWSER": "on",
        f"MINIO_NOTIFY_KAFKA_ENABLE_{target}": "on",
        f"MINIO_NOTIFY_KAFKA_BROKERS_{target}": kafka_brokers or config.kafka_bootstrap,
        f"MINIO_NOTIFY_KAFKA_TOPIC_{target}": config.object_events_topic,
        # Events wait on disk while the broker is down and are delivered when it is back.
        f"MINIO_NOTIFY_KAFKA_QUEUE_DIR_{target}": str(queue_dir),
        f"MINIO_NOTIFY_KAFKA_QUEUE_LIMIT_{target}": "100000",
    }


def minio_arguments(config: StackConfig, data_dir: Path) -> list[str]:
    return [
        "server",
        str(data_dir),
        "--address",
        f"{config.minio_host}:{config.minio_port}",
        "--console-address",
        f"{config.minio_host}:{config.console_port}",
    ]


def trino_node_properties(data_dir: Path | str, node_id: str = "satlake-1") -> str:
    return properties({"node.environment": "satlake", "node.id": node_id, "node.data-dir": data_dir})


def trino_jvm_config(heap: str) -> str:
    """JVM flags from Trino's deployment guide, with a heap that fits a shared developer machine."""
    flags = [
        "-server",
        f"-Xmx{heap}",
        "-XX:InitialRAMPercentage=5",
        "-XX:G1HeapRegionSize=32M",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:-OmitStackTraceInFastThrow",
        "-XX:ReservedCodeCacheSize=256M",
        "-XX:PerMethodRecompilationCutoff=10000",
        "-XX:PerBytecodeRecompilationCutoff=10000",
        "-Djdk.attach.allowAttachSelf=true",
        "-Djdk.nio.maxCachedBufferSize=2000000",
        "-Dfile.encoding=UTF-8",
        "-XX:+EnableDynamicAgentLoading",
    ]
    return "\n".join(flags) + "\n"


def trino_config_properties(http_port: int, bind_host: str | None, query_memory_gb: int = 1) -> str:
    """Single node: the coordinator also schedules work on itself."""
    values: dict[str, object] = {
        "coordinator": "true",
        "node-scheduler.include-coordinator": "true",
        "http-server.http.port": http_port,
        "query.max-memory": f"{query_memory_gb}GB",
        "query.max-memory-per-node": f"{query_memory_gb}GB",
    }
    if bind_host is not None:
        # Unauthenticated HTTP: listen on the loopback interface only.
        values["node.bind-ip"] = bind_host
        values["node.internal-address"] = bind_host
        values["discovery.uri"] = f"http://{bind_host}:{http_port}"
    else:
        values["discovery.uri"] = f"http://localhost:{http_port}"
    return properties(values)


def trino_lake_catalog(s3_endpoint: str, region: str, lake_bucket: str, cache_dir: Path | str) -> str:
    """The ``lake`` catalog: Delta Lake connector, file metastore on the lake bucket, native S3 to MinIO, and
    Trino's file system cache in ``cache_dir``.

    Trino's own key (read the lake, write only the metastore) is read from its environment (``${ENV:…}``), so
    no secret is written to disk here. The cache keeps the Parquet footers and column chunks a query read on
    local disk: Delta data files never change once written (Trino does not cache the mutable
    ``_last_checkpoint``), and at a million catalog items it took a warm search from 510-890 to 400-500 ms.
    """
    return properties(
        {
            "connector.name": "delta_lake",
            "hive.metastore": "file",
            "hive.metastore.catalog.dir": f"s3://{lake_bucket}/{METASTORE_PREFIX}",
            "fs.native-s3.enabled": "true",
            "s3.endpoint": s3_endpoint,
            "s3.region": region,
            "s3.path-style-access": "true",
            "s3.aws-access-key": f"${{ENV:{TRINO_ACCESS_KEY_VAR}}}",
            "s3.aws-secret-key": f"${{ENV:{TRINO_SECRET_KEY_VAR}}}",
            "delta.register-table-procedure.enabled": "true",
            "fs.cache.enabled": "true",
            "fs.cache.directories": cache_dir,
            "fs.cache.max-disk-usage-percentages": "10",
        }
    )


def trino_access_control_properties(rules_file: Path | str) -> str:
    return properties(
        {"access-control.name": "file", "security.config-file": rules_file, "security.refresh-period": "10s"}
    )


def trino_group_provider_properties(group_file: Path | str) -> str:
    return properties({"group-provider.name": "file", "file.group-file": group_file, "file.refresh-period": "10s"})


def trino_etc_files(
    *,
    etc_dir: Path | str,
    data_dir: Path | str,
    http_port: int,
    bind_host: str | None,
    heap: str,
    s3_endpoint: str,
    region: str,
    lake_bucket: str,
) -> dict[str, str]:
    """Every file of Trino's ``etc`` directory, keyed by its path relative to ``etc``."""
    etc = Path(etc_dir)
    return {
        "node.properties": trino_node_properties(data_dir),
        "jvm.config": trino_jvm_config(heap),
        "config.properties": trino_config_properties(http_port, bind_host),
        "log.properties": properties({"io.trino": "INFO"}),
        f"catalog/{TRINO_CATALOG}.properties": trino_lake_catalog(
            s3_endpoint, region, lake_bucket, Path(data_dir) / "fs-cache"
        ),
        "access-control.properties": trino_access_control_properties(etc / "rules.json"),
        "group-provider.properties": trino_group_provider_properties(etc / "groups.txt"),
        "rules.json": trino_access_rules_json(TRINO_CATALOG),
        "groups.txt": trino_group_file(),
    }


def native_trino_etc_files(config: StackConfig) -> dict[str, str]:
    trino_dir = config.server_dir("trino")
    return trino_etc_files(
        etc_dir=trino_dir / "etc",
        data_dir=trino_dir / "data",
        http_port=config.trino_port,
        bind_host=config.trino_host,
        heap=config.trino_heap,
        s3_endpoint=config.s3_endpoint,
        region=config.s3_region,
        lake_bucket=config.lake_bucket,
    )


def docker_trino_etc_files() -> dict[str, str]:
    """Trino's etc for docker-compose.yml: MinIO is reached by its service name, paths are the image's."""
    return trino_etc_files(
        etc_dir="/etc/trino",
        data_dir="/data/trino",
        http_port=8080,
        bind_host=None,
        heap="2G",
        s3_endpoint="http://minio:9000",
        region="us-east-1",
        lake_bucket="satlake",
    )
