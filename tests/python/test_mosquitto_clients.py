"""Interop with the Eclipse Mosquitto command line clients (mosquitto_pub, mosquitto_sub)."""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import time

import pytest

from junction_harness import HOST, TIMEOUT, unique

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None or shutil.which("mosquitto_pub") is None,
    reason="mosquitto-clients not installed",
)

VERSIONS = ["mqttv311", "mqttv5"]
FMT = "MSG|%q|%r|%t|%p"


class Sub:
    """A running mosquitto_sub whose stdout lines are read by a thread."""

    def __init__(self, port: int, version: str, topic: str, qos: int, *extra: str):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.proc = subprocess.Popen(
            [
                # Line-buffer stdout: the -d debug lines (SUBACK) are not flushed otherwise.
                *(["stdbuf", "-oL"] if shutil.which("stdbuf") else []),
                "mosquitto_sub", "-h", HOST, "-p", str(port), "-V", version,
                "-i", unique("msub"), "-t", topic, "-q", str(qos), "-d", "-F", FMT, *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pred, what: str) -> str:
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"mosquitto_sub: no {what} within {TIMEOUT}s (rc={self.proc.poll()}); "
                    f"output:\n" + "\n".join(self.seen)
                ) from None
            self.seen.append(line)
            if pred(line):
                return line

    def wait_suback(self) -> None:
        self.wait_for(lambda l: "received SUBACK" in l, "SUBACK")

    def messages(self, n: int) -> list[tuple[int, bool, str, str]]:
        out = []
        for _ in range(n):
            line = self.wait_for(lambda l: l.startswith("MSG|"), f"message {len(out) + 1} of {n}")
            _, q, r, topic, payload = line.split("|", 4)
            out.append((int(q), r == "1", topic, payload))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def subs():
    started: list[Sub] = []

    def make(*args, **kwargs) -> Sub:
        s = Sub(*args, **kwargs)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def pub(port: int, version: str, topic: str, *args: str, stdin: str | None = None) -> None:
    r = subprocess.run(
        ["mosquitto_pub", "-h", HOST, "-p", str(port), "-V", version,
         "-i", unique("mpub"), "-t", topic, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert r.returncode == 0, f"mosquitto_pub {args} failed ({r.returncode}): {r.stderr}{r.stdout}"


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", VERSIONS)
def test_pub_sub(broker, subs, version, qos):
    topic = unique(f"mosq/{version}/q{qos}")
    sub = subs(broker.tcp, version, topic, qos)
    sub.wait_suback()
    payloads = [f"hello {version} qos{qos} #{i}" for i in range(3)]
    # -l: one message per stdin line, over a single connection.
    pub(broker.tcp, version, topic, "-q", str(qos), "-l", stdin="".join(p + "\n" for p in payloads))
    got = sub.messages(len(payloads))
    assert [g[3] for g in got] == payloads
    assert all(g[2] == topic for g in got)
    assert all(g[0] == qos for g in got), f"delivered QoS {[g[0] for g in got]}, expected {qos}"
    assert not any(g[1] for g in got), "live messages must not carry the retain flag"


@pytest.mark.parametrize("version", VERSIONS)
def test_subscription_downgrades_qos(broker, subs, version):
    """A QoS 2 publish to a QoS 1 subscription arrives at QoS 1."""
    topic = unique(f"mosq/{version}/downgrade")
    sub = subs(broker.tcp, version, topic, 1)
    sub.wait_suback()
    pub(broker.tcp, version, topic, "-q", "2", "-m", "down")
    [(q, _, _, payload)] = sub.messages(1)
    assert (q, payload) == (1, "down")


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_reaches_later_subscriber(broker, subs, version):
    topic = unique(f"mosq/{version}/retained")
    pub(broker.tcp, version, topic, "-q", "1", "-r", "-m", "kept")
    sub = subs(broker.tcp, version, topic, 1, "-C", "1", "-W", str(int(TIMEOUT)))
    [(q, retain, t, payload)] = sub.messages(1)
    assert (t, payload, retain, q) == (topic, "kept", True, 1)
    assert sub.proc.wait(timeout=TIMEOUT) == 0

    # An empty retained publish clears it: a new subscriber gets only live messages.
    pub(broker.tcp, version, topic, "-q", "1", "-r", "-n")
    sub2 = subs(broker.tcp, version, topic, 1)
    sub2.wait_suback()
    pub(broker.tcp, version, topic, "-q", "1", "-m", "live")
    [(_, retain, _, payload)] = sub2.messages(1)
    assert (payload, retain) == ("live", False)


def test_v5_properties_via_mosquitto(broker, subs):
    topic = unique("mosq/v5/props")
    sub = subs(broker.tcp, "mqttv5", topic, 1, "-F", "MSG|%q|%r|%t|%p|%P|%R|%C")
    sub.wait_suback()
    pub(
        broker.tcp, "mqttv5", topic, "-q", "1", "-m", "with-props",
        "-D", "publish", "user-property", "colour", "blue",
        "-D", "publish", "response-topic", "reply/here",
        "-D", "publish", "content-type", "text/plain",
    )
    line = sub.wait_for(lambda l: l.startswith("MSG|"), "message")
    _, q, r, t, payload, user, resp, ctype = line.split("|")
    assert (t, payload, user, resp, ctype) == (topic, "with-props", "colour:blue", "reply/here", "text/plain")
