"""deploy/k8s and deploy/docker: what a cluster would get, checked without a cluster or a Docker daemon.

Why: nothing here can apply the manifests or build the images, so mistakes would surface only on the
day someone deploys. These tests render the kustomize base and the production overlay with the real
``kubectl kustomize``, validate every resource against Kubernetes' own schemas (kubernetes-validate,
strict: an unknown or misspelt field fails), and check the properties the deployment depends on:
probes on endpoints the processes really serve, measured resource requests, sticky socket.io
sessions, no secret value in git, autoscalers aimed at real Deployments, and Dockerfiles that install
what the Makefile installs. A missing kubectl skips on a laptop and fails under CI=true.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.requirements import missing

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKER = ROOT / "deploy" / "docker"
PRODUCTION = Path("overlays") / "production"
SECRETS_EXAMPLE = K8S / PRODUCTION / "secrets.env.example"
# the oldest Kubernetes still widely run that the manifests must work on, and the newest schema we have
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
Resource = dict[str, Any]


def kubectl() -> str:
    """The kubectl binary (kustomize is built in); absent: skip, or fail under CI."""
    path = shutil.which("kubectl")
    if path is None:
        missing("kubectl is not installed (it renders deploy/k8s with `kubectl kustomize`)")
    return path


def render(folder: Path) -> list[Resource]:
    """``kubectl kustomize folder`` as a list of resources."""
    out = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {folder} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def example_keys() -> list[str]:
    """The keys secrets.env.example documents, in order."""
    keys = []
    for line in SECRETS_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keys.append(line.split("=", 1)[0].strip())
    return keys


@pytest.fixture(scope="module")
def k8s_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/k8s copied away, with a secrets.env of random values as an operator would write it."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("*.env"))
    values = "".join(f"{key}={secrets.token_urlsafe(48)}\n" for key in example_keys())
    (copy / PRODUCTION / "secrets.env").write_text(values, encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def rendered(k8s_copy: Path) -> dict[str, list[Resource]]:
    """The base and the production overlay, rendered."""
    return {"base": render(k8s_copy / "base"), "production": render(k8s_copy / PRODUCTION)}


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def containers(resource: Resource) -> list[Resource]:
    """The containers of a Deployment's or a Job's pod template."""
    return resource["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("variant", ["base", "production"])
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_resource_validates_against_the_kubernetes_schema(
    rendered: dict[str, list[Resource]], variant: str, version: str
) -> None:
    errors = []
    for resource in rendered[variant]:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{resource['kind']}/{resource['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)
    kinds = {r["kind"] for r in rendered[variant]}
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "ConfigMap", "Job"} <= kinds


def test_the_four_processes_are_deployed(rendered: dict[str, list[Resource]]) -> None:
    commands = {
        d["metadata"]["name"]: " ".join(containers(d)[0]["args"]) for d in of_kind(rendered["production"], "Deployment")
    }
    assert set(commands) == {"concierge-rasa", "concierge-actions", "concierge-web", "concierge-ingestor"}
    assert "rasa_run.py run" in commands["concierge-rasa"]
    assert "--endpoints deploy/production/endpoints.yml" in commands["concierge-rasa"]
    assert "-m bot.action_server" in commands["concierge-actions"]
    assert "-m bot.web" in commands["concierge-web"]
    assert "-m bot.crm.ingestor --source pika" in commands["concierge-ingestor"]
    (job,) = of_kind(rendered["production"], "Job")
    assert containers(job)[0]["args"] == ["python", "-m", "bot.db.migrate"]


def run_sh_health_urls() -> dict[int, str]:
    """The URL path scripts/run.sh waits on for each server, by the server's default port."""
    ports = {"RASA_PORT": 5005, "ACTION_PORT": 5055, "WEB_PORT": 8000}
    text = (ROOT / "scripts" / "run.sh").read_text(encoding="utf-8")
    found = re.findall(r'curl -fsS "http://127\.0\.0\.1:\$\{(\w+)\}(/[^"]*)"', text)
    assert found, "scripts/run.sh no longer waits on the servers' health URLs: update this test"
    return {ports[var]: path for var, path in found}


def test_every_deployment_has_probes_on_real_endpoints_and_measured_requests(
    rendered: dict[str, list[Resource]],
) -> None:
    health = run_sh_health_urls()
    for deployment in of_kind(rendered["production"], "Deployment"):
        name = deployment["metadata"]["name"]
        for container in containers(deployment):
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container, f"{name}: no {probe}"
                spec = container[probe]
                if "httpGet" in spec:
                    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
                    port = ports.get(spec["httpGet"]["port"], spec["httpGet"]["port"])
                    # the same URL scripts/run.sh waits on, so the endpoint exists and means "up"
                    assert spec["httpGet"]["path"] == health[port], f"{name} {probe}: {spec['httpGet']}"
                else:
                    assert spec["exec"]["command"], f"{name} {probe}: neither httpGet nor exec"
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), f"{name}: requests {requests}"
            assert "memory" in container["resources"]["limits"], f"{name}: no memory limit"
    text = (K8S / "base" / "ingestor.yaml").read_text(encoding="utf-8")
    assert "bot.crm.ingestor" in text and "RABBITMQ_HOST" in text  # the exec probes' real targets


def test_memory_requests_say_where_the_figure_came_from() -> None:
    for name in ("rasa", "actions", "web", "ingestor", "migrate-job"):
        text = (K8S / "base" / f"{name}.yaml").read_text(encoding="utf-8")
        assert re.search(r"# memory: .*(RSS|rss).*\d+ MiB", text, re.S), f"{name}.yaml: memory request without source"


def test_socketio_goes_to_rasa_with_sticky_sessions_and_long_timeouts(rendered: dict[str, list[Resource]]) -> None:
    routes: dict[str, tuple[str, dict[str, str]]] = {}
    for ingress in of_kind(rendered["production"], "Ingress"):
        annotations = ingress["metadata"].get("annotations", {})
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] == "shop.example.com"
            for path in rule["http"]["paths"]:
                routes[path["path"]] = (path["backend"]["service"]["name"], annotations)
    service, annotations = routes["/socket.io/"]
    assert service == "concierge-rasa"
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/session-cookie-name"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert routes["/webhooks/"][0] == "concierge-rasa"
    for path in ("/console", "/api", "/"):
        assert routes[path][0] == "concierge-web", path
    # Rasa's HTTP API (conversations, model) is never routed from outside
    assert [p for p, (s, _) in routes.items() if s == "concierge-rasa"] == ["/socket.io/", "/webhooks/"]
    services = {s["metadata"]["name"] for s in of_kind(rendered["production"], "Service")}
    assert {s for s, _ in routes.values()} <= services


def test_no_secret_value_is_in_git(rendered: dict[str, list[Resource]], k8s_copy: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--others", "--cached", "--exclude-standard", "deploy"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert not [f for f in tracked if f.endswith(".env")], "an env file would be committed"
    for name in tracked:
        if name.endswith((".yaml", ".yml")) and name.startswith("deploy/k8s/"):
            docs = list(yaml.safe_load_all((ROOT / name).read_text(encoding="utf-8")))
            assert not [d for d in docs if d and d.get("kind") == "Secret"], f"{name} holds a Secret"
            for doc in docs:
                for generator in (doc or {}).get("secretGenerator", []):
                    assert "literals" not in generator, f"{name}: secret literals in git"
                    for env in generator.get("envs", []) + generator.get("files", []):
                        ignored = subprocess.run(["git", "check-ignore", "-q", str(Path(name).parent / env)], cwd=ROOT)
                        assert ignored.returncode == 0, f"{name}: {env} is not git-ignored"
    example = {k: v for k, v in (line.split("=", 1) for line in SECRETS_EXAMPLE.read_text().splitlines()
                                 if line.strip() and not line.startswith("#"))}
    assert example and not any(v.strip() for v in example.values()), "secrets.env.example holds a value"
    # every secret a pod reads is a key of the generated Secret (else the pod would not start)
    generated = {s["metadata"]["name"]: set(s["data"]) for s in of_kind(rendered["production"], "Secret")}
    for resource in of_kind(rendered["production"], "Deployment") + of_kind(rendered["production"], "Job"):
        for container in containers(resource):
            env = {e["name"]: e for e in container.get("env", [])}
            for item in env.values():
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in generated.get(ref["name"], set()), f"{ref} not generated"
                else:
                    assert item["name"] in ("CONCIERGE_REQUIRED_ENV",), f"{item['name']} set in git"
            for required in env["CONCIERGE_REQUIRED_ENV"]["value"].split():
                assert "secretKeyRef" in env[required]["valueFrom"], required


def test_the_overlay_does_not_render_without_secrets(k8s_copy: Path, tmp_path: Path) -> None:
    bare = tmp_path / "k8s"
    shutil.copytree(k8s_copy, bare, ignore=shutil.ignore_patterns("secrets.env"))
    out = subprocess.run([kubectl(), "kustomize", str(bare / PRODUCTION)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "secrets.env" in out.stderr


@pytest.mark.parametrize(("values", "code"), [({"A": "x", "B": "y"}, 0), ({"A": "x", "B": ""}, 78), ({"A": "x"}, 78)])
def test_require_env_refuses_to_start_with_an_empty_secret(values: dict[str, str], code: int) -> None:
    env = {"PATH": os.environ["PATH"], "CONCIERGE_REQUIRED_ENV": "A B", **values}
    command = [str(DOCKER / "require-env.sh"), sys.executable, "-c", "print('started')"]
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    assert out.returncode == code, out.stderr
    assert ("started" in out.stdout) == (code == 0)


def test_rasa_gets_every_variable_its_endpoints_file_names(rendered: dict[str, list[Resource]]) -> None:
    wanted = set(re.findall(r"\$\{(\w+)\}", (ROOT / "deploy" / "production" / "endpoints.yml").read_text()))
    (config,) = of_kind(rendered["production"], "ConfigMap")
    (rasa,) = [d for d in of_kind(rendered["production"], "Deployment") if d["metadata"]["name"] == "concierge-rasa"]
    given = set(config["data"]) | {e["name"] for e in containers(rasa)[0]["env"]}
    assert wanted <= given, f"not given to Rasa: {sorted(wanted - given)}"


def test_autoscalers_target_the_deployments(rendered: dict[str, list[Resource]]) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(rendered["production"], "Deployment")}
    targets = set()
    for hpa in of_kind(rendered["production"], "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] in deployments, ref
        target = deployments[ref["name"]]
        # the HPA owns the replica count; a fixed one would be reset on every apply
        assert "replicas" not in target["spec"], ref["name"]
        assert all("cpu" in c["resources"]["requests"] for c in containers(target))
        targets.add(ref["name"])
    assert targets == {"concierge-rasa", "concierge-actions", "concierge-web"}
    assert deployments["concierge-ingestor"]["spec"]["replicas"] == 1  # one consumer, in order


# ---------------------------------------------------------------- Dockerfiles vs the Makefile


def recipe(target: str) -> str:
    """The recipe of a Makefile target, continuation lines joined."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    start = lines.index(next(line for line in lines if line.startswith(target + ":")))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        body.append(line.strip())
    return "\n".join(body)


def stages(dockerfile: str) -> dict[str, str]:
    """Each build stage's instructions by its base image (FROM ...), continuation lines joined."""
    text = (DOCKER / dockerfile).read_text(encoding="utf-8").replace("\\\n", " ")
    out: dict[str, str] = {}
    base = ""
    for line in text.splitlines():
        if line.startswith("FROM "):
            base = line.split()[1]
            out[base] = ""
        elif base:
            out[base] += line + "\n"
    return out


def installs(commands: str) -> list[str]:
    """What the pip installs of some commands install, in order: lock files, pinned torch, the project."""
    found = []
    for match in re.finditer(r"pip install ([^\n&;]*)", commands):
        args = match.group(1).split()
        found += [a for a in args if a.startswith("constraints/")]
        found += [a for a in args if a.startswith("torch==")]
        if "-e" in args and "--no-deps" in args:
            found.append("--no-deps -e .")
    return found


def python_version(target: str) -> str:
    return re.search(r"find_python\.sh (3\.\d+)", recipe(target)).group(1)


def test_app_image_installs_what_the_makefile_installs() -> None:
    make = installs(recipe("$(VENV)/.installed"))
    assert make == ["torch==2.13.0", "constraints/actions.lock", "--no-deps -e ."]  # the parse works
    image = stages("app.Dockerfile")
    (python,) = [body for base, body in image.items() if base.startswith("python:")]
    (base,) = [base for base in image if base.startswith("python:")]
    assert base.startswith(f"python:{python_version('$(VENV)/.installed')}-")
    assert installs(python) == make
    assert any("npm ci" in body for body in image.values())


def test_rasa_image_installs_what_the_makefile_installs() -> None:
    image = stages("rasa.Dockerfile")
    by_version = {base.split(":")[1].split("-")[0]: body for base, body in image.items()}
    venv, rvenv = python_version("$(VENV)/.installed"), python_version("$(RVENV)/.installed")
    assert installs(by_version[rvenv]) == installs(recipe("$(RVENV)/.installed")) == ["constraints/rasa.lock"]
    # the ONNX export stage is the action-server runtime plus the $(ONNX) target's script
    assert installs(by_version[venv]) == installs(recipe("$(VENV)/.installed"))
    assert "scripts/export_onnx.py" in recipe("$(ONNX)") and "python scripts/export_onnx.py" in by_version[venv]
    # the model is trained with the $(MODEL) target's arguments
    train = re.search(r"train (.*)", recipe("$(MODEL)")).group(1)
    assert f"rasa train {train}" in by_version[rvenv]
