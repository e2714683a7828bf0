"""Running delegate plugins: lookup, environment, stdin, errors, crashes, timeouts."""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.plugins import install_recorder, read_records, recorder_conf

from pymultus.cni.errors import DelegateError, InvalidConfigError
from pymultus.cni.invoke import (
    PluginEnv,
    SubprocessExecutor,
    exec_plugin,
    find_plugin,
    plugin_versions,
)

VERSIONS = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]
ENV = PluginEnv(
    command="ADD",
    container_id="cid-1",
    netns="/var/run/netns/test",
    ifname="net1",
    args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0"), ("TOKEN", "a=b")),
    path=("/opt/cni/bin", "/usr/lib/cni"),
)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "bin"


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


def run(bin_dir: Path, conf: dict[str, Any], env: PluginEnv = ENV, **kw: Any) -> bytes:
    return exec_plugin(conf["type"], json.dumps(conf).encode(), env, [str(bin_dir)], **kw)


def gone(pid: int) -> bool:
    """True when ``pid`` no longer exists: a zombie still exists, so this proves reaping."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def dead(pid: int, within: float = 2.0) -> bool:
    """True when ``pid`` is gone or a zombie (an orphan waits for init to reap it)."""
    deadline = time.monotonic() + within
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X") or time.monotonic() >= deadline:
            return state in ("Z", "X")
        time.sleep(0.02)


# --- find_plugin ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "/usr/bin/true", ".", ".."])
def test_find_plugin_refuses_names_that_leave_the_dir(bad: str, bin_dir: Path) -> None:
    with pytest.raises(InvalidConfigError) as info:
        find_plugin(bad, [str(bin_dir)])
    assert info.value.field == "type"


def test_find_plugin_searches_dirs_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    install_recorder(second, "rec")
    assert find_plugin("rec", [str(first), str(second)]) == str(second / "rec")
    install_recorder(first, "rec")
    assert find_plugin("rec", [str(first), str(second)]) == str(first / "rec")


def test_find_plugin_skips_directories(tmp_path: Path) -> None:
    (tmp_path / "a" / "rec").mkdir(parents=True)
    install_recorder(tmp_path / "b", "rec")
    assert find_plugin("rec", [str(tmp_path / "a"), str(tmp_path / "b")]).endswith("b/rec")


def test_find_plugin_not_found_names_type_and_dirs() -> None:
    with pytest.raises(InvalidConfigError) as info:
        find_plugin("nope", ["/opt/cni/bin", "/nonexistent"])
    assert info.value.msg == 'failed to find plugin "nope" in path [/opt/cni/bin /nonexistent]'
    assert info.value.field == "type"


def test_find_plugin_no_dirs() -> None:
    with pytest.raises(InvalidConfigError, match="no paths provided"):
        find_plugin("bridge", [])


# --- PluginEnv -----------------------------------------------------------------------------


def test_to_environ_overrides_inherited_cni_vars() -> None:
    environ = PluginEnv(command="DEL").to_environ({"PATH": "/bin", "CNI_NETNS": "/stale"})
    assert environ == {
        "PATH": "/bin",
        "CNI_COMMAND": "DEL",
        "CNI_CONTAINERID": "",
        "CNI_NETNS": "",
        "CNI_ARGS": "",
        "CNI_IFNAME": "",
        "CNI_PATH": "",
    }


# --- exec with the recorder ----------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_add_ok_returns_stdout_and_passes_env_and_stdin(
    version: str, bin_dir: Path, records: Path
) -> None:
    install_recorder(bin_dir, "rec")
    conf = recorder_conf("rec", records, cni_version=version, note="ünïcode <&> \u2028")
    stdin = json.dumps(conf, ensure_ascii=False).encode() + b"\n  "
    out = exec_plugin("rec", stdin, ENV, [str(bin_dir)], base_environ={"PATH": os.defpath})
    result = json.loads(out)
    assert result["cniVersion"] == version
    assert result["interfaces"][0]["name"] == "net1"
    (rec,) = read_records(records)
    assert rec["command"] == "ADD"
    assert rec["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "cid-1",
        "CNI_NETNS": "/var/run/netns/test",
        "CNI_IFNAME": "net1",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web-0;TOKEN=a=b",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    }
    assert base64.b64decode(rec["stdinB64"]) == stdin
    assert gone(rec["pid"])


def test_recorder_runs_with_its_own_shebang(bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec", interpreter=None)
    assert (bin_dir / "rec").read_bytes().startswith(b"#!/usr/bin/env python3\n")
    out = run(bin_dir, recorder_conf("rec", records), base_environ={"PATH": os.defpath})
    assert json.loads(out)["cniVersion"] == "1.0.0"


def test_inherited_environment_is_passed(bin_dir: Path, records: Path, tmp_path: Path) -> None:
    install_recorder(bin_dir, "rec")
    conf = recorder_conf("rec", records)
    base = {"PATH": os.defpath, "CNI_EXTRA_THING": "kept"}
    run(bin_dir, conf, base_environ=base)
    assert read_records(records)[0]["env"]["CNI_EXTRA_THING"] == "kept"


@pytest.mark.parametrize("code", [1, 3, 7, 11, 50, 51, 100, 999])
def test_plugin_error_keeps_its_code(code: int, bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec")
    behaviour = {"ADD": "error", "code": code, "msg": "no luck", "details": "more"}
    conf = recorder_conf("rec", records, behaviour=behaviour)
    with pytest.raises(DelegateError) as info:
        run(bin_dir, conf)
    assert info.value.error_code == code
    assert info.value.msg == "no luck"
    assert info.value.details == "more"
    assert info.value.plugin == "rec"


@pytest.mark.parametrize("command", ["DEL", "CHECK", "STATUS", "GC"])
def test_every_verb_can_fail(command: str, bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec")
    conf = recorder_conf("rec", records, behaviour={command: {"action": "error", "code": 50}})
    assert run(bin_dir, conf, PluginEnv(command="ADD")) != b""
    with pytest.raises(DelegateError) as info:
        run(bin_dir, conf, PluginEnv(command=command))
    assert info.value.error_code == 50


def test_garbage_is_6_with_exit_status_and_stderr(bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec")
    behaviour = {"ADD": "garbage", "exitCode": 3, "stderr": "panic: nil map\n"}
    with pytest.raises(DelegateError) as info:
        run(bin_dir, recorder_conf("rec", records, behaviour=behaviour))
    assert info.value.error_code == 6
    assert "exited with status 3" in info.value.msg
    assert "panic: nil map" in info.value.msg


def test_silent_failure_is_5(bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec")
    with pytest.raises(DelegateError) as info:
        run(bin_dir, recorder_conf("rec", records, behaviour={"ADD": "exit-silent"}))
    assert info.value.error_code == 5
    assert "exited with status 1 and printed no error" in info.value.msg


def test_crash_is_5_naming_the_signal(bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec")
    behaviour = {"ADD": "crash", "stderr": "about to die"}
    with pytest.raises(DelegateError) as info:
        run(bin_dir, recorder_conf("rec", records, behaviour=behaviour))
    assert info.value.error_code == 5
    assert "killed by signal 9" in info.value.msg
    assert "about to die" in info.value.msg


def test_success_stderr_goes_to_the_sink(bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec")
    seen: list[tuple[str, bytes]] = []
    executor = SubprocessExecutor(stderr_sink=lambda plugin, err: seen.append((plugin, err)))
    conf = recorder_conf("rec", records, behaviour={"stderr": "warning: x"})
    out = run(bin_dir, conf, executor=executor)
    assert b"warning" not in out
    assert seen == [("rec", b"warning: x")]


@pytest.mark.parametrize(
    "settings",
    [
        {"ADD": "hang"},
        {"ADD": "hang", "ignoreTerm": True},
        {"ADD": "hang", "ignoreTerm": True, "spawnChild": True},
    ],
    ids=["sigterm", "sigkill", "sigkill-group"],
)
def test_hang_is_killed_and_reaped(settings: dict[str, Any], bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec")
    executor = SubprocessExecutor(kill_grace=0.3)
    started = time.monotonic()
    with pytest.raises(DelegateError) as info:
        run(
            bin_dir,
            recorder_conf("rec", records, behaviour=settings),
            timeout=0.5,
            executor=executor,
        )
    assert time.monotonic() - started < 3
    assert info.value.error_code == 5
    assert "timed out after 0.5 s" in info.value.msg
    (rec,) = read_records(records)
    assert gone(rec["pid"])
    if rec["childPid"]:
        assert dead(rec["childPid"])


def test_text_file_busy_is_retried(bin_dir: Path, records: Path) -> None:
    path = install_recorder(bin_dir, "rec")
    # An open writer makes exec fail with ETXTBSY until the timer closes it.
    with open(path, "r+b") as writer:
        timer = threading.Timer(0.15, writer.close)
        timer.start()
        try:
            executor = SubprocessExecutor(busy_retry_delays=[0.05] * 20)
            out = run(bin_dir, recorder_conf("rec", records), executor=executor)
        finally:
            timer.cancel()
    assert json.loads(out)["interfaces"]
    assert len(read_records(records)) == 1


def test_text_file_busy_gives_up(bin_dir: Path, records: Path) -> None:
    path = install_recorder(bin_dir, "rec")
    with open(path, "r+b"), pytest.raises(DelegateError) as info:
        run(
            bin_dir,
            recorder_conf("rec", records),
            executor=SubprocessExecutor(busy_retry_delays=[0.01]),
        )
    assert info.value.error_code == 5
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ETXTBSY


def test_not_executable_is_a_delegate_error(bin_dir: Path, records: Path) -> None:
    install_recorder(bin_dir, "rec").chmod(0o644)
    with pytest.raises(DelegateError, match="failed to execute plugin 'rec'"):
        run(bin_dir, recorder_conf("rec", records))


# --- VERSION -------------------------------------------------------------------------------


def test_plugin_versions(bin_dir: Path, records: Path) -> None:
    install_recorder(
        bin_dir,
        "rec",
        sidecar={"recordFile": str(records), "supportedVersions": ["0.4.0", "1.0.0"]},
    )
    assert plugin_versions("rec", [str(bin_dir)]) == ["0.4.0", "1.0.0"]
    (rec,) = read_records(records)
    assert rec["env"]["CNI_COMMAND"] == "VERSION"
    assert json.loads(rec["stdin"]) == {"cniVersion": "1.1.0"}


def test_plugin_versions_of_a_pre_version_plugin(bin_dir: Path) -> None:
    behaviour = {"VERSION": {"action": "error", "code": 4, "msg": "unknown CNI_COMMAND: VERSION"}}
    install_recorder(bin_dir, "rec", sidecar={"behaviour": behaviour})
    assert plugin_versions("rec", [str(bin_dir)]) == ["0.1.0"]


LOOPBACK = Path("/usr/lib/cni/loopback")


@pytest.mark.skipif(not LOOPBACK.exists(), reason="Debian's containernetworking-plugins missing")
def test_real_plugin_version() -> None:
    versions = plugin_versions("loopback", ["/nonexistent", str(LOOPBACK.parent)])
    assert "0.3.1" in versions
    assert "1.0.0" in versions


def test_chroot_root_finds_and_runs_the_plugin_inside(tmp_path: Path) -> None:
    """``chrootDir``: the plugin is looked up under the root and run chrooted into it."""
    root = tmp_path / "root"
    (root / "opt/cni/bin").mkdir(parents=True)
    shutil.copy("/usr/lib/cni/loopback", root / "opt/cni/bin/loopback")
    ldd = subprocess.run(
        ["ldd", "/usr/lib/cni/loopback"], capture_output=True, text=True, check=True
    )
    for lib in re.findall(r"(/\S+) \(0x", ldd.stdout):
        (root / lib[1:]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, root / lib[1:])  # what Debian's dynamically linked plugins need
    executor = SubprocessExecutor(root=str(root))
    out = exec_plugin("loopback", b"", PluginEnv("VERSION"), ["/opt/cni/bin"], executor=executor)
    assert b"supportedVersions" in out
    with pytest.raises(InvalidConfigError):  # not found under the root, though it exists outside
        exec_plugin("bridge", b"", PluginEnv("VERSION"), ["/usr/lib/cni"], executor=executor)
