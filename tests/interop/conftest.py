"""Fixtures shared by the interop tests: a real broker per test, unique topic
names, and the broker's log printed when a test fails.

The binary comes from ``SLUICE_BIN`` (``tests/run-all`` sets it to
``target/release/sluice``). A missing binary is a failure, not a skip: a
suite that silently skips everything proves nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid

import pytest

from broker_process import BrokerProcess


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether the test failed (to print broker logs).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def sluice_bin() -> str:
    path = os.environ.get("SLUICE_BIN", "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"SLUICE_BIN={path!r} is not an executable sluice binary; build it with "
                    "`cargo build --release --bin sluice`")
    return path


@pytest.fixture
def broker_factory(sluice_bin, tmp_path, request):
    """`make(config=None, start=True) -> BrokerProcess`. Every broker made
    here is SIGKILLed at teardown if still running."""
    made: list[BrokerProcess] = []

    def make(config: dict | None = None, start: bool = True) -> BrokerProcess:
        b = BrokerProcess(sluice_bin, tmp_path / f"broker{len(made)}", config)
        made.append(b)
        if start:
            b.start()
        return b

    yield make

    failed = any(getattr(request.node, f"rep_{w}", None) is not None
                 and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    bad_lines = []
    for b in made:
        b.close()
        for run in range(1, b.starts + 1):
            bad_lines += [f"{b.workdir.name} run {run}: {line}" for line in b.log(run).splitlines()
                          if "panicked" in line or " ERROR " in line]
        # Data directories go even when the test failed (the logs stay,
        # beside them): one run of earlier builds, which preallocated whole
        # 1 GiB segments, filled the shared disk with kept directories.
        shutil.rmtree(b.data_dir, ignore_errors=True)
        if failed:
            for run in range(1, b.starts + 1):
                print(f"---- broker {b.workdir.name} run {run} log (tail) ----")
                print("\n".join(b.log(run).splitlines()[-60:]))
    # Nothing a client sends may panic the broker (a panicking connection
    # task would not stop the process, so only the log shows it), and
    # client misbehaviour is logged at debug, not error (STYLE.md).
    assert not bad_lines, "broker logged panics or errors:\n" + "\n".join(bad_lines[:20])


@pytest.fixture
def broker(broker_factory) -> BrokerProcess:
    """A broker with the embedded defaults (auto-create on, 1 partition,
    durability fsync)."""
    return broker_factory()


@pytest.fixture
def topic(request) -> str:
    """A topic name unique to this test (and this run)."""
    base = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)[:150]
    return f"{base}-{uuid.uuid4().hex[:8]}"
