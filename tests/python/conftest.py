"""Fixtures for the Junction interop tests.

`broker`: one `junction start` per test module, with the built-in tcp and ws listeners on
free ports of 127.0.0.1; each test uses its own client ids and topics.
`clients`: a factory of paho clients that are all disconnected at the end of the test.
"""

from __future__ import annotations

import pytest

from junction_harness import Broker, ClientFactory, start_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Broker:
    b = start_broker(tmp_path_factory.mktemp("junction"))
    yield b
    alive = b.proc.poll() is None
    b.stop()
    assert alive, f"broker died during the tests (rc={b.proc.returncode}):\n{b.stderr_tail()}"


@pytest.fixture
def clients():
    f = ClientFactory()
    yield f
    f.close_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the broker's stderr tail to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for name in ("broker", "tls_broker"):
            b = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(b, Broker):
                rc = b.proc.poll()
                rep.sections.append(
                    (f"junction stderr ({name}, rc={rc})", b.stderr_tail() or "<empty>")
                )
