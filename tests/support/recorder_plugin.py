#!/usr/bin/env python3
"""A CNI plugin for tests: it records every call and does what its config tells it to.

Stdlib only (it runs under whatever ``python3`` the plugin's PATH finds). Installed under any
``type`` name by ``tests.support.plugins.install_recorder``.

Config keys (from stdin, over defaults from an optional sidecar file ``<executable>.json``,
which is how VERSION, whose stdin carries no config, is steered):

* ``recordFile``: append one JSON line per call: ``command``, ``env`` (every ``CNI_*``
  variable), ``stdin`` (text), ``stdinB64`` (exact bytes), ``pid``, ``argv0``, ``childPid``,
  ``time`` (epoch seconds).
* ``behaviour``: ``{VERB: ACTION or {"action": ACTION, ...per-verb keys}, ...defaults}``.
  Actions: ``ok`` (default), ``error`` (error JSON on stdout, exit 1), ``garbage`` (non-JSON
  on stdout, exit 1), ``garbage-ok`` (non-JSON on stdout, exit 0), ``crash`` (SIGKILL
  itself), ``hang`` (sleep until killed), ``exit-silent`` (exit ``exitCode``, no output).
  Keys, per verb or as defaults: ``code`` (7), ``msg``, ``details``, ``exitCode`` (1),
  ``stderr`` (text written to stderr first), ``delay`` (seconds to sleep first),
  ``ignoreTerm`` (ignore SIGTERM), ``spawnChild`` (start a child that sleeps, pid recorded).
* ``result``: what ADD-ok prints (its cniVersion set to the config's); otherwise the
  ``prevResult`` passed through, otherwise a minimal result naming ``CNI_IFNAME``.
* ``supportedVersions``: what VERSION-ok reports (default: every version to 1.1.0).
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time

ALL_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
MINIMAL_MAC = "02:00:00:00:00:01"


def load_config(stdin):
    conf = {}
    sidecar = sys.argv[0] + ".json"
    if os.path.exists(sidecar):
        with open(sidecar, encoding="utf-8") as fh:
            conf.update(json.load(fh))
    try:
        parsed = json.loads(stdin.decode("utf-8")) if stdin.strip() else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        conf.update(parsed)
    return conf


def verb_settings(conf, command):
    behaviour = conf.get("behaviour") or {}
    settings = {k: v for k, v in behaviour.items() if not k.isupper()}
    entry = behaviour.get(command, "ok")
    if isinstance(entry, dict):
        settings.update(entry)
    else:
        settings["action"] = entry
    settings.setdefault("action", "ok")
    return settings


def spawn_child():
    code = "import time\nwhile True: time.sleep(3600)"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return child.pid


def record(conf, command, stdin, child_pid):
    path = conf.get("recordFile")
    if not path:
        return
    entry = {
        "command": command,
        "env": {k: v for k, v in os.environ.items() if k.startswith("CNI_")},
        "stdin": stdin.decode("utf-8", "replace"),
        "stdinB64": base64.b64encode(stdin).decode("ascii"),
        "pid": os.getpid(),
        "argv0": sys.argv[0],
        "childPid": child_pid,
        "time": time.time(),
    }
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def emit(obj):
    sys.stdout.write(json.dumps(obj, indent=4) + "\n")
    sys.stdout.flush()


def minimal_result(version):
    if version in ("0.1.0", "0.2.0"):
        return {"cniVersion": version, "dns": {}}
    iface = {"name": os.environ.get("CNI_IFNAME", ""), "mac": MINIMAL_MAC}
    if os.environ.get("CNI_NETNS"):
        iface["sandbox"] = os.environ["CNI_NETNS"]
    return {"cniVersion": version, "interfaces": [iface], "dns": {}}


def succeed(conf, command):
    version = conf.get("cniVersion", "")
    if command == "VERSION":
        emit(
            {
                "cniVersion": ALL_VERSIONS[-1],
                "supportedVersions": conf.get("supportedVersions", ALL_VERSIONS),
            }
        )
    elif command == "ADD":
        result = conf.get("result") or conf.get("prevResult") or minimal_result(version)
        emit(dict(result, cniVersion=version))
    return 0


def fail(conf, settings):
    error = {"code": settings.get("code", 7), "msg": settings.get("msg", "recorder says no")}
    if conf.get("cniVersion"):
        error = dict({"cniVersion": conf["cniVersion"]}, **error)
    if settings.get("details"):
        error["details"] = settings["details"]
    emit(error)
    return settings.get("exitCode", 1)


def hang():
    while True:
        time.sleep(3600)


def act(conf, command, settings):
    action = settings["action"]
    if action == "ok":
        return succeed(conf, command)
    if action == "error":
        return fail(conf, settings)
    if action in ("garbage", "garbage-ok"):
        sys.stdout.write("this is not json {\n")
        sys.stdout.flush()
        return 0 if action == "garbage-ok" else settings.get("exitCode", 1)
    if action == "crash":
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "hang":
        hang()
    if action == "exit-silent":
        return settings.get("exitCode", 1)
    sys.stderr.write(f"recorder: unknown action {action!r}\n")
    return 98


def main():
    stdin = sys.stdin.buffer.read()
    command = os.environ.get("CNI_COMMAND", "")
    conf = load_config(stdin)
    settings = verb_settings(conf, command)
    if settings.get("ignoreTerm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child_pid = spawn_child() if settings.get("spawnChild") else None
    record(conf, command, stdin, child_pid)
    if settings.get("stderr"):
        sys.stderr.write(settings["stderr"])
        sys.stderr.flush()
    if settings.get("delay"):
        time.sleep(float(settings["delay"]))
    return act(conf, command, settings)


if __name__ == "__main__":
    sys.exit(main())
