"""The typed messages between daemon, zygote and shim keep the JSON lines they replaced:
shims outlive the daemon, so a daemon and a shim of different versions talk."""

from __future__ import annotations

import json

import pytest

from moorage.shim import wire


@pytest.mark.parametrize(("message", "line"), [
    (wire.CreateOutcome(), {"op": "created"}),
    (wire.Wait(), {"op": "wait"}),
    (wire.Start(), {"op": "start"}),
    (wire.State(), {"op": "state"}),
    (wire.Kill(9, all=True), {"op": "kill", "signal": 9, "all": True}),
    (wire.KillExec("e1", 9), {"op": "kill_exec", "exec_id": "e1", "signal": 9}),
    (wire.Pause(), {"op": "pause"}),
    (wire.Resume(), {"op": "resume"}),
    (wire.Resize(24, 80, "e1"), {"op": "resize", "h": 24, "w": 80, "exec_id": "e1"}),
    (wire.ExecStatus("e1"), {"op": "exec_status", "exec_id": "e1"}),
    (wire.Attach(stdin=True, stdout=True), {"op": "attach", "stdin": True, "stdout": True,
                                            "stderr": False}),
    (wire.Exec("e1", {"args": ["true"]}, stdout=True, console_size=[24, 80]),
     {"op": "exec", "exec_id": "e1", "process": {"args": ["true"]}, "stdin": False,
      "stdout": True, "stderr": False, "console_size": [24, 80]}),
])
def test_requests_keep_their_json_lines(message: wire.Message, line: dict) -> None:
    encoded = message.encode()
    assert encoded.endswith(b"\n")
    assert json.loads(encoded) == line
    decoded = wire.decode_request(json.dumps(line).encode())
    assert type(decoded) is type(message)
    assert decoded.to_dict() == line


def test_a_request_missing_optional_keys_takes_their_defaults() -> None:
    kill = wire.decode_request(b'{"op": "kill", "signal": 15}')
    assert isinstance(kill, wire.Kill) and (kill.signal, kill.all) == (15, False)
    resize = wire.decode_request(b'{"op": "resize", "h": 1, "w": 2}')
    assert isinstance(resize, wire.Resize) and resize.exec_id == ""


def test_unknown_and_malformed_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown request 'fly'"):
        wire.decode_request(b'{"op": "fly"}')
    with pytest.raises(ValueError):
        wire.decode_request(b"[1]")


def test_replies_and_failures() -> None:
    assert wire.decode_reply(b'{"pid": 7, "init_pid": 8}', wire.CreateResult).init_pid == 8
    # What an older shim answers: the "ok" no side reads is ignored.
    assert wire.decode_reply(b'{"ok": true, "pid": 5}', wire.Started).pid == 5
    failure = wire.decode_reply(b'{"error": "no such file"}', wire.CreateResult)
    assert isinstance(failure, wire.Failure) and failure.error == "no such file"
    assert failure.errno is None
    # An exit record carries an "error" of its own: it is an exit, not a failure.
    record = wire.decode_reply(b'{"exit_code": 0, "oom_killed": false, '
                               b'"finished_at": "2026-01-01T00:00:00Z", "error": ""}',
                               wire.ExitRecord)
    assert isinstance(record, wire.ExitRecord) and record.exit_code == 0
    assert isinstance(wire.decode_reply(b'{"error": "shim: gone"}', wire.ExitRecord),
                      wire.Failure)


def test_an_exit_record_without_a_code_is_255() -> None:
    assert wire.ExitRecord.from_dict({"error": "lost"}).exit_code == 255


def test_shim_config_round_trip() -> None:
    config = wire.ShimConfig(
        container_id="c", bundle="/b", runtime_root="/r", runtime_path="", runtime_args=(),
        socket_path="/s.sock", exit_file="/e", log_path="", tty=False, open_stdin=False,
        stdin_once=False, console_size=(0, 0))
    again = wire.ShimConfig.from_dict(json.loads(config.encode()))
    assert again.to_dict() == config.to_dict()
    assert "op" not in config.to_dict()
