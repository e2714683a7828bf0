"""``pymultus generate-config``: the generated Multus config, from the command line.

``--type thick`` prints the shim config the daemon's config manager would write
(``00-multus.conf``) for a daemon config and the primary CNI config it finds. ``--type thin``
is Go's thin entrypoint: it writes ``00-multus.conf(list)`` with the primary inside
``delegates`` and, in a pod, ``multus.d/multus.kubeconfig`` from its service account; with
``--watch`` it keeps both current (token rotation, primary changes) and never deletes them.

``--per-node-cert-dir`` with ``--bootstrap-kubeconfig`` is Go's ``kubeconfig_generator``
with per-node certificates: the kubeconfig names the node's own certificate
(``<dir>/multus-client-current.pem``, CN ``system:multus:$MULTUS_NODE_NAME``) instead of the
service-account token; it is requested first, and with ``--watch`` rotated like the daemon's.
The directory must be at the same path on the host, where the thin plugin reads it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pymultus.cli.admin import PluginType
from pymultus.cni.errors import CniError
from pymultus.config.daemon import DEFAULT_CERT_DURATION_S, parse_daemon_conf, parse_go_duration
from pymultus.config.generator import (
    generate_shim_config,
    generate_thin_config,
    service_account_kubeconfig,
)
from pymultus.daemon.confmanager import find_primary, write_if_changed
from pymultus.daemon.credentials import NODE_NAME_ENV
from pymultus.k8s.certmanager import CertManager, CertSettings

console = Console(stderr=True)
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _primary(directory: str) -> str:
    name = find_primary(directory)
    if name is None:
        console.print(f"[red]no primary CNI config (.conf/.conflist) in {directory}[/]")
        raise typer.Exit(1)
    return os.path.join(directory, name)


def _thick(daemon_config: str, autoconfig_dir: str | None) -> None:
    conf = parse_daemon_conf(Path(daemon_config).read_bytes())
    primary = _primary(autoconfig_dir or conf.multus_autoconfig_dir or conf.cni_config_dir)
    data = generate_shim_config(Path(primary).read_bytes(), conf, primary_path=primary)
    sys.stdout.buffer.write(data + b"\n")


def _kubeconfig(conf_dir: str) -> bytes | None:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    token_file, ca_file = Path(SA_DIR, "token"), Path(SA_DIR, "ca.crt")
    if not (host and port and token_file.exists()):
        return None
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    data = service_account_kubeconfig(server, token_file.read_text().strip(), ca_file.read_bytes())
    write_if_changed(os.path.join(conf_dir, "multus.d", "multus.kubeconfig"), data, 0o600)
    return data


def _per_node(conf_dir: str, cert_dir: str, bootstrap: str, duration: str) -> CertManager:
    """The node's certificate (requested now unless a valid one is there), and the thin
    plugin's kubeconfig naming it."""
    seconds = (
        parse_go_duration(duration, field="--cert-duration")
        if duration
        else DEFAULT_CERT_DURATION_S
    )
    node = os.environ.get(NODE_NAME_ENV, "")
    manager = CertManager(CertSettings(node, bootstrap, cert_dir, seconds))
    manager.ensure()
    os.makedirs(os.path.join(conf_dir, "multus.d"), exist_ok=True)
    target = os.path.join(conf_dir, "multus.d", "multus.kubeconfig")
    write_if_changed(target, Path(manager.kubeconfig_path).read_bytes(), 0o600)
    return manager


def _thin_once(
    autoconfig_dir: str, conf_dir: str, kubeconfig_host: str, version: str, *, per_node: bool
) -> str:
    primary = _primary(autoconfig_dir)
    os.makedirs(os.path.join(conf_dir, "multus.d"), exist_ok=True)
    kube = b"" if per_node else _kubeconfig(conf_dir) or b""
    name, data = generate_thin_config(
        Path(primary).read_bytes(),
        primary_path=primary,
        kubeconfig=kubeconfig_host,
        cni_version=version,
    )
    write_if_changed(os.path.join(conf_dir, name), data, 0o600)
    return hashlib.sha256(Path(primary).read_bytes() + kube).hexdigest()


def generate_config(
    *,
    type_: Annotated[PluginType, typer.Option("--type", "-t")] = PluginType.thick,
    daemon_config: Annotated[
        str, typer.Option(help="thick: the daemon config")
    ] = "/etc/cni/net.d/multus.d/daemon-config.json",
    multus_autoconfig_dir: Annotated[str | None, typer.Option(help="where the primary is")] = None,
    cni_conf_dir: Annotated[str, typer.Option(help="thin: where to write")] = "/host/etc/cni/net.d",
    multus_kubeconfig_file_host: Annotated[
        str, typer.Option(help="thin: the kubeconfig path as the host sees it")
    ] = "/etc/cni/net.d/multus.d/multus.kubeconfig",
    cni_version: Annotated[
        str, typer.Option(help="thin: cniVersion (default: the primary's)")
    ] = "",
    watch: Annotated[bool, typer.Option(help="thin: keep the files current, every second")] = False,
    per_node_cert_dir: Annotated[
        str | None, typer.Option(help="thin: use a per-node certificate kept in this directory")
    ] = None,
    bootstrap_kubeconfig: Annotated[
        str, typer.Option(help="thin, per-node: credentials that may request the certificate")
    ] = "",
    cert_duration: Annotated[str, typer.Option(help="thin, per-node: lifetime (Go)")] = "10m",
) -> None:
    """Print (thick) or write (thin) the generated Multus config."""
    try:
        if type_ is PluginType.thick:
            _thick(daemon_config, multus_autoconfig_dir)
            return
        source = multus_autoconfig_dir or cni_conf_dir
        per_node = per_node_cert_dir is not None
        if per_node_cert_dir is not None:
            manager = _per_node(
                cni_conf_dir, per_node_cert_dir, bootstrap_kubeconfig, cert_duration
            )
            if watch:
                manager.start()  # rotates; the kubeconfig names the current pair
        args = (source, cni_conf_dir, multus_kubeconfig_file_host, cni_version)
        seen = _thin_once(*args, per_node=per_node)
        console.print(f"wrote the thin config in {cni_conf_dir}")
        while watch:
            time.sleep(1.0)
            now = _thin_once(*args, per_node=per_node)
            if now != seen:
                console.print("primary config or service-account token changed: rewritten")
                seen = now
    except (CniError, OSError) as exc:  # OSError: a path given on the command line
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(1) from None
