"""docker-compose.yml and the Dockerfile describe a deployment that can actually start.

`docker compose config` is the real validator, but Docker is not on every machine (nor on the
machine this suite was written on), so the structure is checked here with PyYAML: the services,
their wiring, health checks, volumes, the GPU reservation and that every RADSAL_* variable they
set is a real setting. When the compose plugin is present, `docker compose config` runs too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli.main import build_parser
from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form for environment"
    return {str(k): str(v) for k, v in env.items()}


def test_services_are_database_app_and_gpu_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db", "app", "worker"} <= set(services)
    assert services["db"]["image"].startswith("postgres:")
    assert services["worker"]["command"] == ["radsal", "worker"]


def test_app_and_worker_share_postgres_and_data(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("app", "worker", "worker-cpu"):
        env = _env(services[name])
        assert env["RADSAL_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@db:5432/" in env["RADSAL_DATABASE_URL"]
        assert env["RADSAL_DATA_DIR"] == "/data"
        assert env["RADSAL_WORKER"] == "external", "the app must leave jobs to the worker"
        assert "radsal-data:/data" in services[name]["volumes"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["db"]["volumes"])
    named = set(compose["volumes"])
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in named, f"volume {source} is not declared at the top level"


def test_every_radsal_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    fields = {f"RADSAL_{name.upper()}" for name in Settings.model_fields}
    for name, svc in compose["services"].items():
        for key in _env(svc):
            if key.startswith("RADSAL_"):
                assert key in fields, f"{name} sets {key}, which Settings does not read"


def test_app_migrates_then_serves_and_is_health_checked(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    command = " ".join(app["command"])
    assert command.index("radsal db upgrade") < command.index("radsal serve")
    assert "--host 0.0.0.0" in command
    assert "/healthz" in " ".join(app["healthcheck"]["test"])
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert compose["services"]["db"]["healthcheck"]["test"][1].startswith("pg_isready")


def test_worker_reserves_nvidia_gpus_and_has_a_cpu_fallback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert _env(services["worker"])["RADSAL_DEVICE"] == "auto"
    # The worker waits for a healthy app, i.e. for the migrations the app applies.
    assert services["worker"]["depends_on"]["app"]["condition"] == "service_healthy"
    cpu = services["worker-cpu"]
    assert cpu["profiles"] == ["cpu"]
    assert "deploy" not in cpu
    assert _env(cpu)["RADSAL_DEVICE"] == "cpu"


def test_compose_commands_exist_in_the_cli(compose: dict[str, Any]) -> None:
    """The containers run `radsal <cmd>`: each such command must be one the CLI knows."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    known = set(sub.choices)  # type: ignore[arg-type]
    commands = [" ".join(s["command"]) for s in compose["services"].values() if "command" in s]
    used = {m for c in commands for m in re.findall(r"radsal (\w+)", c)}
    assert used, "no radsal command found in the services"
    assert used >= {"serve", "worker"}
    assert used <= known, f"compose runs unknown commands: {used - known}"


def test_dockerfile_builds_from_project_files() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for secret in (".env", ".venv", "data/", "*.sqlite"):
        assert secret in ignored


def test_dockerfile_copies_every_runtime_file_the_app_reads() -> None:
    """Files the app opens relative to the project root (templates, static, migrations, the
    R template...) must be in the image, or the container fails at the first such request."""
    copied = {
        src.rstrip("/")
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
    }
    used = {
        match
        for path in (ROOT / "app").rglob("*.py")
        for match in re.findall(r'PROJECT_ROOT\s*/\s*"([^"/]+)', path.read_text())
    }
    assert {"templates", "static", "migrations", "alembic.ini"} <= used
    assert used <= copied, f"the image lacks {sorted(used - copied)}"


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker is not installed")
def test_docker_compose_config_validates() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env = {**os.environ, "RADSAL_SECRET_KEY": "test", "POSTGRES_PASSWORD": "test"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "cpu", "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
