"""Operations tests use the multi-process consortium harness of tests/support/cluster.py.

Importing its fixtures here makes them this folder's: `cluster_factory`,
`make_cluster`, `fast_consensus`, `txkit`, and the session guard that ends the
started nodes by PID if the run itself is ended.
"""

from cluster import _no_orphan_nodes, cluster_factory, fast_consensus, make_cluster, txkit

__all__ = ["_no_orphan_nodes", "cluster_factory", "fast_consensus", "make_cluster", "txkit"]
