"""deploy/k8s against the material deploy/README.md's Kubernetes `init` makes.

The README's init line is run for real, then its kubectl commands, against a
stand-in `kubectl` that records what they create; each StatefulSet's mounts
are laid out from those ConfigMaps and Secrets as the pod would see them, and
loaded as the node loads its config.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployment import (
    DEPLOY_README,
    INSTITUTIONS,
    ROOT,
    api_paths,
    check_node_root,
    dockerfile,
    dockerfile_cmd,
    dockerfile_data_link,
    run_init,
)

from ledger.genesis import Genesis
from node.cli import build_parser

K8S = ROOT / "deploy" / "k8s"
CLUSTER_DOMAIN = "cluster.local"
PASSPHRASE = "correct horse"

FAKE_KUBECTL = """\
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
for i, arg in enumerate(args):
    if arg.startswith("--from-file="):
        key, sep, path = arg[len("--from-file="):].partition("=")
        if not Path(path if sep else key).is_file():
            sys.exit(f"error: {path or key}: no such file")
    if arg in ("-f", "-k") and not (Path(os.environ["FAKE_KUBECTL_REPO"]) / args[i + 1]).exists():
        sys.exit(f"error: {args[i + 1]}: no such file or directory")
"""


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return docs


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


@pytest.fixture(scope="module")
def statefulsets(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return of_kind(documents, "StatefulSet")


@pytest.fixture(scope="module")
def services(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return of_kind(documents, "Service")


def readme_section() -> str:
    text = DEPLOY_README.read_text()
    return text.split("\n## Kubernetes\n", 1)[1].split("\n## ", 1)[0]


def k8s_init_command() -> str:
    lines = [
        line.strip()
        for line in readme_section().splitlines()
        if line.strip().startswith("notarychain-node init")
    ]
    assert len(lines) == 1
    return lines[0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Genesis]:
    """The README's Kubernetes init, run where its kubectl commands will run."""
    work = tmp_path_factory.mktemp("k8s")
    command = k8s_init_command()
    out = shlex.split(command)[shlex.split(command).index("--out") + 1]
    return work, run_init(command, work / out)


@pytest.fixture(scope="module")
def kubectl(workspace: tuple[Path, Genesis]) -> list[list[str]]:
    """Every kubectl command of the README's Kubernetes section, run against a recorder."""
    work, _ = workspace
    bin_dir = work / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
    fake.chmod(0o755)
    blocks = re.findall(r"```sh\n(.*?)```", readme_section(), re.DOTALL)
    assert blocks
    log = work / "kubectl.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_KUBECTL_LOG": str(log),
        "FAKE_KUBECTL_REPO": str(ROOT),
        "NOTARYCHAIN_KEY_PASSPHRASE": PASSPHRASE,
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(blocks)],
        check=False,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def created(kubectl: list[list[str]]) -> dict[tuple[str, str, str], dict[str, str]]:
    """(namespace, kind, name) -> {key: file path or literal:VALUE} of each object created."""
    objects: dict[tuple[str, str, str], dict[str, str]] = {}
    for args in kubectl:
        rest = list(args)
        namespace = "default"
        if "-n" in rest:
            i = rest.index("-n")
            namespace = rest[i + 1]
            del rest[i : i + 2]
        if rest[:1] != ["create"]:
            continue
        if rest[1] == "configmap":
            kind, name, options = "ConfigMap", rest[2], rest[3:]
        else:
            assert rest[1:3] == ["secret", "generic"], args
            kind, name, options = "Secret", rest[3], rest[4:]
        data = {}
        for option in options:
            flag, _, value = option.partition("=")
            key, sep, source = value.partition("=")
            if flag == "--from-file":
                data[key if sep else Path(key).name] = source if sep else key
            else:
                assert flag == "--from-literal", option
                data[key] = "literal:" + source
        objects[namespace, kind, name] = data
    return objects


# ---------------------------------------------------------------- structure


def test_one_statefulset_per_institution_of_the_consortium(
    statefulsets: dict[str, dict[str, Any]], workspace: tuple[Path, Genesis]
) -> None:
    _, genesis = workspace
    assert set(statefulsets) == set(INSTITUTIONS) == {i.name for i in genesis.institutions}
    for statefulset in statefulsets.values():
        assert statefulset["spec"]["replicas"] == 1, "one node per institution"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert {f"{name}.yaml" for name in INSTITUTIONS} <= manifests


def test_everything_is_in_the_namespace_the_genesis_hosts_name(
    documents: list[dict[str, Any]],
) -> None:
    namespaces = of_kind(documents, "Namespace")
    assert list(namespaces) == ["notarychain"]
    for doc in documents:
        if doc["kind"] not in ("Namespace", "Kustomization"):
            assert doc["metadata"]["namespace"] == "notarychain", doc["metadata"]["name"]
    argv = shlex.split(k8s_init_command())
    hosts = argv[argv.index("--hosts") + 1].split(",")
    assert len(hosts) == len(INSTITUTIONS)
    assert all(host.endswith(f".notarychain.svc.{CLUSTER_DOMAIN}") for host in hosts)


def selects(service: dict[str, Any], statefulset: dict[str, Any]) -> bool:
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def container(statefulset: dict[str, Any]) -> dict[str, Any]:
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def named_ports(statefulset: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(statefulset)["ports"]}


def test_genesis_hosts_are_the_pods_dns_names_under_their_headless_services(
    statefulsets: dict[str, dict[str, Any]],
    services: dict[str, dict[str, Any]],
    workspace: tuple[Path, Genesis],
) -> None:
    _, genesis = workspace
    for name, statefulset in statefulsets.items():
        governing = services[statefulset["spec"]["serviceName"]]
        assert governing["spec"]["clusterIP"] == "None"
        # a node becomes ready only once it reaches its peers: they must find it before
        assert governing["spec"]["publishNotReadyAddresses"] is True
        assert [n for n, s in statefulsets.items() if selects(governing, s)] == [name]
        namespace = statefulset["metadata"]["namespace"]
        pod_dns = f"{name}-0.{governing['metadata']['name']}.{namespace}.svc.{CLUSTER_DOMAIN}"
        assert genesis.institution(name).node.host == pod_dns


def test_every_service_port_is_its_institutions_api_or_peer_port(
    statefulsets: dict[str, dict[str, Any]],
    services: dict[str, dict[str, Any]],
    workspace: tuple[Path, Genesis],
) -> None:
    _, genesis = workspace
    api_services = 0
    for service in services.values():
        owners = [n for n, s in statefulsets.items() if selects(service, s)]
        assert len(owners) == 1, f"{service['metadata']['name']} selects {owners}"
        node = genesis.institution(owners[0]).node
        ports = named_ports(statefulsets[owners[0]])
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            number = ports[target] if isinstance(target, str) else target
            assert number in (node.api_port, node.peer_port)
            assert port["port"] == number
        if service["spec"].get("clusterIP") != "None":
            api_services += 1
            assert [p["port"] for p in service["spec"]["ports"]] == [node.api_port]
    assert api_services == len(statefulsets), "one API Service per institution"


def test_container_ports_are_the_genesis_ports(
    statefulsets: dict[str, dict[str, Any]], workspace: tuple[Path, Genesis]
) -> None:
    _, genesis = workspace
    for name, statefulset in statefulsets.items():
        node = genesis.institution(name).node
        assert named_ports(statefulset) == {"api": node.api_port, "peer": node.peer_port}


def test_probes_hit_the_health_endpoints_on_the_api_port(
    statefulsets: dict[str, dict[str, Any]], workspace: tuple[Path, Genesis]
) -> None:
    _, genesis = workspace
    paths = api_paths()
    for name, statefulset in statefulsets.items():
        spec = container(statefulset)
        ports = named_ports(statefulset)
        expected = {
            "livenessProbe": "/v1/health/live",
            "readinessProbe": "/v1/health/ready",
            "startupProbe": "/v1/health/live",
        }
        for probe_name, path in expected.items():
            if probe_name == "startupProbe" and probe_name not in spec:
                continue
            probe = spec[probe_name]["httpGet"]
            port = ports[probe["port"]] if isinstance(probe["port"], str) else probe["port"]
            assert port == genesis.institution(name).node.api_port
            assert probe["path"] == path
            assert path in paths
            assert probe.get("scheme", "HTTP") == "HTTP"
        annotations = statefulset["spec"]["template"]["metadata"].get("annotations", {})
        if "prometheus.io/port" in annotations:
            assert int(annotations["prometheus.io/port"]) == ports["api"]
            assert annotations["prometheus.io/path"] in paths


def test_pods_run_the_image_as_its_non_root_user(
    statefulsets: dict[str, dict[str, Any]],
) -> None:
    uid = int(re.search(r"^ARG NOTARYCHAIN_UID=(\d+)$", dockerfile(), re.MULTILINE).group(1))
    for statefulset in statefulsets.values():
        pod = statefulset["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] == uid != 0
        assert pod["runAsGroup"] != 0
        assert pod["fsGroup"] != 0, "the data volume must be writable by the node's group"
        spec = container(statefulset)
        security = spec["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert not security.get("privileged", False)
        assert spec.get("args", dockerfile_cmd()) == dockerfile_cmd()
        assert "command" not in spec, "the image's ENTRYPOINT runs the node"


def test_data_is_a_claim_template_mounted_where_the_image_links_data(
    statefulsets: dict[str, dict[str, Any]],
) -> None:
    link_target, _ = dockerfile_data_link()
    for statefulset in statefulsets.values():
        templates = {t["metadata"]["name"]: t for t in statefulset["spec"]["volumeClaimTemplates"]}
        assert list(templates) == ["data"]
        assert templates["data"]["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert templates["data"]["spec"]["resources"]["requests"]["storage"]
        mounted = {m["name"]: m["mountPath"] for m in container(statefulset)["volumeMounts"]}
        assert mounted["data"] == link_target


# ---------------------------------------------------------------- the README's kubectl


def test_readme_applies_existing_manifests_namespace_first(kubectl: list[list[str]]) -> None:
    # the stand-in kubectl fails on a -f or -k path that is not in the repository
    namespace = ["apply", "-f", "deploy/k8s/namespace.yaml"]
    assert namespace in kubectl
    assert ["apply", "-k", "deploy/k8s"] in kubectl
    first_create = next(i for i, args in enumerate(kubectl) if "create" in args)
    assert kubectl.index(namespace) < first_create


def test_each_pods_configmap_and_secrets_are_created_by_the_readme(
    statefulsets: dict[str, dict[str, Any]],
    created: dict[tuple[str, str, str], dict[str, str]],
) -> None:
    for name, statefulset in statefulsets.items():
        namespace = statefulset["metadata"]["namespace"]
        pod = statefulset["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in container(statefulset)["volumeMounts"]:
            volume = volumes.get(mount["name"])
            if volume is None or "emptyDir" in volume:
                continue
            if "configMap" in volume:
                key = (namespace, "ConfigMap", volume["configMap"]["name"])
            else:
                key = (namespace, "Secret", volume["secret"]["secretName"])
            assert key in created, f"{name}: {key} is never created"
            assert mount["subPath"] in created[key], f"{name}: {key} has no {mount['subPath']}"
            assert mount.get("readOnly") is True
            source = Path(created[key][mount["subPath"]])
            # OUT/genesis.json, OUT/ca.crt or OUT/NAME/...: never another institution's file
            assert len(source.parts) == 2 or source.parent.name == name, source
            assert source.name not in ("ca.key", "admin.key"), source
        passphrase = next(
            e for e in container(statefulset)["env"] if e["name"] == "NOTARYCHAIN_KEY_PASSPHRASE"
        )["valueFrom"]["secretKeyRef"]
        assert passphrase["optional"] is True, "unencrypted keys need no passphrase"
        if name == "notary-office":  # the README's example
            secret = created[namespace, "Secret", passphrase["name"]]
            assert secret[passphrase["key"]] == "literal:" + PASSPHRASE


def test_each_pods_mounts_make_its_node_config_load(
    statefulsets: dict[str, dict[str, Any]],
    created: dict[tuple[str, str, str], dict[str, str]],
    workspace: tuple[Path, Genesis],
    tmp_path: Path,
) -> None:
    work, genesis = workspace
    link_target, link = dockerfile_data_link()
    config = build_parser().parse_args(dockerfile_cmd()).config
    for name, statefulset in statefulsets.items():
        namespace = statefulset["metadata"]["namespace"]
        volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
        root = tmp_path / name
        for mount in container(statefulset)["volumeMounts"]:
            destination = root / mount["mountPath"].lstrip("/")
            volume = volumes.get(mount["name"])
            if volume is None or "emptyDir" in volume:  # claim template or scratch
                destination.mkdir(parents=True)
                continue
            if "configMap" in volume:
                key = (namespace, "ConfigMap", volume["configMap"]["name"])
            else:
                key = (namespace, "Secret", volume["secret"]["secretName"])
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / created[key][mount["subPath"]], destination)
        (root / link.lstrip("/")).symlink_to(root / link_target.lstrip("/"))
        check_node_root(root / str(config).lstrip("/"), name, genesis, root / "data")
