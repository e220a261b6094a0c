"""Operations tests reuse the multi-process harness of tests/node (`tests/node/conftest.py`).

With `--import-mode=importlib` a conftest cannot be imported by name, so the
harness module is loaded from its file (under the name pytest itself gives it,
so that a run of the whole suite shares one copy, and one list of the node
processes it started) and its fixtures are re-exported here: `cluster_factory`,
`make_cluster`, `fast_consensus`, `txkit`, and the session guard that ends the
started nodes by PID if the run itself is ended.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HARNESS_MODULE = "tests.node.conftest"
HARNESS_PATH = Path(__file__).resolve().parent.parent / "node" / "conftest.py"


def _load_harness() -> ModuleType:
    module = sys.modules.get(HARNESS_MODULE)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(HARNESS_MODULE, HARNESS_PATH)
    assert spec is not None and spec.loader is not None, HARNESS_PATH
    module = importlib.util.module_from_spec(spec)
    sys.modules[HARNESS_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[HARNESS_MODULE]
        raise
    return module


_harness = _load_harness()

cluster_factory = _harness.cluster_factory
make_cluster = _harness.make_cluster
fast_consensus = _harness.fast_consensus
txkit = _harness.txkit
_no_orphan_nodes = _harness._no_orphan_nodes
