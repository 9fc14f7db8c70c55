"""pytest fixtures for MiniZK (registered through the ``pytest11`` entry point).

- ``zk_ensemble``: a one-member ensemble shared by the session, reset before each test.
- ``zk_ensemble3``: the same with three members (faults: kill, partition, pause ...).
- ``zk_manual``: three members on a manual clock (``advance(ms)``), reset before each test.
- ``zk_ensemble_factory``: ``zk_ensemble_factory(members=5, clock="manual")`` for anything
  else; every ensemble it starts is closed after the test.

Options: ``--minizk-bin PATH`` (else $MINIZK_BIN, minizk on PATH, or the checkout's
.build/debug/minizk).
"""

import pytest

from .ensemble import MiniZKEnsemble


def pytest_addoption(parser):
    group = parser.getgroup("minizk")
    group.addoption("--minizk-bin", default=None, help="the minizk binary to run ensembles with")


def _binary(config):
    return config.getoption("--minizk-bin")


def _shared(request, name, **kwargs):
    ensemble = MiniZKEnsemble(minizk=_binary(request.config), **kwargs).start()
    request.addfinalizer(ensemble.close)
    return ensemble


def _fresh(ensemble):
    """Leaves a shared ensemble as a new one: all members up, links healed, tree empty."""
    for member in ensemble.status():
        if member["paused"]:
            ensemble.resume(member["id"])
    ensemble.heal()
    if any(not member["running"] for member in ensemble.status()):
        ensemble.start_members()
    ensemble.await_ready()
    ensemble.reset()
    return ensemble


@pytest.fixture(scope="session")
def _zk_shared1(request):
    return _shared(request, "zk1", members=1)


@pytest.fixture(scope="session")
def _zk_shared3(request):
    return _shared(request, "zk3", members=3)


@pytest.fixture(scope="session")
def _zk_shared_manual(request):
    return _shared(request, "zkm", members=3, clock="manual")


@pytest.fixture
def zk_ensemble(_zk_shared1):
    return _fresh(_zk_shared1)


@pytest.fixture
def zk_ensemble3(_zk_shared3):
    return _fresh(_zk_shared3)


@pytest.fixture
def zk_manual(_zk_shared_manual):
    return _fresh(_zk_shared_manual)


@pytest.fixture
def zk_ensemble_factory(request):
    started = []

    def factory(**kwargs):
        ensemble = MiniZKEnsemble(minizk=_binary(request.config), **kwargs).start()
        started.append(ensemble)
        return ensemble

    yield factory
    for ensemble in started:
        ensemble.close()
