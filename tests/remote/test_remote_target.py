"""Host-string validation, ssh argument building and ssh-stderr diagnosis (no network needed)."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seekdeploy.errors import RemoteError
from seekdeploy.remote import diagnose
from seekdeploy.remote.ssh import SshOptions, SshSession, quote_command, with_remote_timeout
from seekdeploy.remote.target import SshTarget


@pytest.mark.parametrize(
    ("text", "user", "host", "port"),
    [
        ("root@127.0.0.1:2222", "root", "127.0.0.1", 2222),
        ("jetson-orin", None, "jetson-orin", None),
        ("ubuntu@nano.local", "ubuntu", "nano.local", None),
        ("pi@[fe80::1]:22", "pi", "fe80::1", 22),
        ("my_alias", None, "my_alias", None),
    ],
)
def test_parse_accepts_plain_targets(text: str, user: str | None, host: str, port: int | None) -> None:
    target = SshTarget.parse(text)
    assert (target.user, target.host, target.port) == (user, host, port)
    assert SshTarget.parse(target.label) == target  # the label round-trips


@pytest.mark.parametrize(
    "text",
    [
        "", "@host", "user@", "user@:22", "-oProxyCommand=sh", "user@-oProxyCommand=x", "-l@host",
        "user@host;rm -rf /", "user@host:22;id", "user@ho st", "us er@host", "user@host:0",
        "user@host:70000", "user@host:2x", "user@$(id)", "user@`id`", "user@host|cat", "a@b@c",
        "user@host&", "user@host\n", "user@ho\x00st", "user@::1", "user@[::1", "user@[::1]x",
        "user@host/..", "user@..", "user@hôst", "user@host:", "user@'host'", 'user@"h"',
    ],
)  # fmt: skip
def test_parse_rejects_anything_else(text: str) -> None:
    with pytest.raises(RemoteError, match="SSH host"):
        SshTarget.parse(text)


@given(st.text(alphabet=" ;|&$`'\"<>()*?!\\\n\t{}", min_size=1, max_size=4), st.text(max_size=8))
def test_metacharacters_never_pass(meta: str, rest: str) -> None:
    with pytest.raises(RemoteError):
        SshTarget.parse(f"user@host{meta}{rest}")


def test_bad_host_is_rejected_before_any_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    from seekdeploy.measure.remote import profile_remote

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a subprocess was started for an invalid host")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    with pytest.raises(RemoteError, match="invalid SSH host"):
        profile_remote("missing.onnx", object(), ["ok@host", "root@host;reboot"])
    with pytest.raises(RemoteError, match="invalid SSH host"):
        SshSession("-oProxyCommand=touch /tmp/x")


def test_default_options_are_strict_and_respect_user_config() -> None:
    argv = SshSession("me@dev:2200").ssh_argv("true")
    assert argv[0] == "ssh"
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert "-F" not in argv and "-i" not in argv  # ~/.ssh/config and its identities apply
    assert argv[-3:] == ["--", "me@dev", "true"]  # destination after "--": never an option
    assert argv[argv.index("-p") + 1] == "2200"
    assert any(a.startswith("ConnectTimeout=") for a in argv)
    assert any(a.startswith("ServerAliveInterval=") for a in argv)


def test_opt_in_options(tmp_path) -> None:
    options = SshOptions(identity_file=tmp_path / "id", ssh_config=tmp_path / "cfg",
                         known_hosts_file=tmp_path / "kh", accept_new_host_key=True)  # fmt: skip
    argv = SshSession("dev", options).ssh_argv("true")
    assert "StrictHostKeyChecking=accept-new" in argv
    assert argv[argv.index("-F") + 1] == str(tmp_path / "cfg")
    assert argv[argv.index("-i") + 1] == str(tmp_path / "id")
    assert f"UserKnownHostsFile={tmp_path / 'kh'}" in argv


def test_remote_commands_quote_every_argument() -> None:
    command = quote_command(["echo", "a b", "$(id)", "x;y", "it's"])
    assert shlex.split(command) == ["echo", "a b", "$(id)", "x;y", "it's"]
    # Run the guarded form through a real local shell: arguments arrive intact.
    line = with_remote_timeout(["printf", "%s|", "a b", "$(id)", "x;y"], 5)
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True)
    assert done.stdout == "a b|$(id)|x;y|"


_TARGET = SshTarget.parse("me@dev:2200")


@pytest.mark.parametrize(
    ("stderr", "error_type", "phrase"),
    [
        ("ssh: connect to host dev port 2200: Connection refused", diagnose.HostUnreachableError, "refused"),
        ("ssh: Could not resolve hostname dev: Name or service not known", diagnose.HostUnreachableError, "resolve"),
        ("ssh: connect to host dev port 22: Connection timed out", diagnose.HostUnreachableError, "timed out"),
        ("me@dev: Permission denied (publickey).", diagnose.KeyRefusedError, "--identity"),
        ("No ED25519 host key is known for [dev]:2200 and you have requested strict checking.\n"
         "Host key verification failed.", diagnose.UnknownHostKeyError, "--accept-new-host-key"),
        ("@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.",
         diagnose.HostKeyChangedError, "ssh-keygen -R '[dev]:2200'"),
        ("Connection to dev closed by remote host.", diagnose.ConnectionDroppedError, "retry"),
        ("client_loop: send disconnect: Broken pipe", diagnose.ConnectionDroppedError, "dropped"),
        ("kex_exchange_identification: something odd", RemoteError, "something odd"),
    ],
)  # fmt: skip
def test_ssh_failures_are_told_apart(stderr: str, error_type: type, phrase: str) -> None:
    error = diagnose.classify_ssh_failure(stderr, _TARGET, "/kh")
    assert type(error) is error_type
    assert phrase in str(error)


def test_missing_module_line_is_parsed() -> None:
    stderr = "noise\nseekdeploy-agent: missing-module onnxruntime (No module named 'onnxruntime')\n"
    assert diagnose.find_missing_module(stderr) == "onnxruntime"
    assert diagnose.find_missing_module("Traceback ...") is None


def test_cli_options_build_ssh_options(tmp_path) -> None:
    import click
    from click.testing import CliRunner

    from seekdeploy.remote.cli_options import remote_options, ssh_options_from_cli

    seen = {}

    @click.command()
    @remote_options
    def fake(**remote) -> None:
        seen["hosts"] = remote["hosts"]
        seen["built"] = ssh_options_from_cli(**remote)

    key = tmp_path / "id"
    result = CliRunner().invoke(fake, ["--host", "a@b", "--host", "c:2", "--identity", str(key),
                                       "--accept-new-host-key", "--remote-timeout", "30",
                                       "--python", "/usr/bin/python3.10"])  # fmt: skip
    assert result.exit_code == 0, result.output
    options, python, trtexec = seen["built"]
    assert seen["hosts"] == ("a@b", "c:2") and python == "/usr/bin/python3.10" and trtexec is None
    assert options.identity_file == key and options.accept_new_host_key
    assert options.command_timeout_s == 30.0 and options.ssh_config is None
