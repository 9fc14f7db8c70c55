"""Run MiniZK ensembles from Python tests, through ``minizk ensemble --control``.

    from minizk_testing import MiniZKEnsemble

    with MiniZKEnsemble(members=3, clock="manual") as zk:
        client = KazooClient(hosts=zk.connect_string)
        ...
        zk.kill_leader()
        zk.advance(12_000)
"""

from .ensemble import ControlError, MiniZKEnsemble, find_minizk

__all__ = ["ControlError", "MiniZKEnsemble", "find_minizk"]
