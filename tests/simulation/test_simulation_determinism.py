"""One seed, one run: the simulator is reproducible, so a failing seed is a test case."""

import subprocess
import sys

from consensus.simulate import SimConfig, run


def test_same_seed_gives_the_same_trace() -> None:
    config = SimConfig(seed=42, nodes=4, faults="swarm", byzantine=1)
    first, second = run(config), run(config)
    assert first.trace_hash == second.trace_hash
    assert first.commits == second.commits


def test_different_seeds_give_different_traces() -> None:
    hashes = {run(SimConfig(seed=s, byzantine=1)).trace_hash for s in range(5)}
    assert len(hashes) == 5


def test_command_line_prints_totals_and_is_independent_of_jobs_and_hash_seed() -> None:
    lines = []
    for jobs, hash_seed in (("1", "1"), ("2", "2")):
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "consensus.simulate",
                "--seeds",
                "6",
                "--byzantine",
                "1",
                "--jobs",
                jobs,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
        )
        lines.append(completed.stdout.strip().splitlines()[-1])
    assert lines[0] == lines[1]
    assert '"safety_violations": 0' in lines[0]
    assert '"runs": 6' in lines[0]


def test_command_line_refuses_too_many_byzantine_replicas() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "consensus.simulate", "--nodes", "4", "--byzantine", "2"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert "--byzantine must be within 0..1" in completed.stderr
