"""Config keys whose effect shows outside the broker's clients: the console log."""

from __future__ import annotations

from junction_harness import Client, start_broker, unique


def _connect_and_leave(broker) -> None:
    c = Client(broker.tcp, client_id=unique("log"))
    c.connect()
    c.disconnect()


def test_log_console_level_and_enable(tmp_path):
    loud = start_broker(tmp_path / "loud", config="log.console { enable = true, level = debug }")
    try:
        _connect_and_leave(loud)
    finally:
        loud.stop()
    assert any("client connected" in line for line in loud.stderr_lines), loud.stderr_tail()

    quiet = start_broker(tmp_path / "quiet", config="log.console { enable = false, level = debug }")
    try:
        _connect_and_leave(quiet)
    finally:
        quiet.stop()
    assert not any("client connected" in line for line in quiet.stderr_lines), quiet.stderr_tail()
