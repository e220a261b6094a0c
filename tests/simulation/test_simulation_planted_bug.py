"""The simulator catches a broken quorum rule: a replica that commits on 2f commits."""

from consensus.replica import Replica
from consensus.simulate import SimConfig
from consensus.simulate.runner import run_many


class CommitsOnTwoF(Replica):
    """A deliberately wrong replica: committed-local with 2f instead of 2f + 1 commits."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.commit_quorum = 2 * self.f


def test_accepting_2f_commits_is_caught_within_the_default_seeds() -> None:
    configs = (
        SimConfig(seed=s, nodes=4, faults="swarm", byzantine=1, replica_class=CommitsOnTwoF)
        for s in range(100)
    )
    violations = [v for result in run_many(configs, jobs=2) for v in result.violations]
    assert violations, "the simulator missed a replica that commits without a quorum"
    assert any("agreement" in v or "state" in v for v in violations)
