"""`notarychain-node bench`: throughput, latency and memory of a real local consortium.

It creates a consortium in a temporary directory, starts every node as its
own process (real TLS between them, real SQLite), drives it with signed
evidence registrations from separate load-generator processes (open loop at
`--rate`, or closed loop at `--concurrency`), and reports: committed
transactions per second, commit latency percentiles, view changes, each
node's peak resident memory, and, measured in the same run on the same
machine, the Ed25519 verification rate per core and the ceiling it implies
(cores x verifications per second / nodes, since every node checks every
client signature) with the fraction of it achieved. Figures only: nothing
here asserts a timing.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ledger.encoding import decode
from ledger.errors import LedgerError
from ledger.families.evidence import evidence_key
from ledger.genesis import ConsensusSettings, GenesisIdentity
from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey, public_key_text, verify
from ledger.proofs import ProofBundle, verify_bundle
from node.families import code_hashes
from node.material import create_consortium
from node.up import Consortium, local_specs

VERIFY_SAMPLE: Final = 4000
WARMUP_S: Final = 2.0
RSS_SAMPLE_S: Final = 0.5
SAMPLES_INTERVAL_S: Final = 30.0
PROOF_TRIES: Final = 50
PROOFS_S_MAX: Final = 60.0


@dataclass(frozen=True, slots=True)
class BenchOptions:
    nodes: int = 4
    duration_s: float = 30.0
    rate: float = 0.0
    concurrency: int = 0
    batch_max: int = 2048
    payload_bytes: int = 100
    clients: int = 2
    submit_batch: int = 1
    """Transactions per submission request (1: one `POST /v1/transactions` each)."""
    transactions: int = 1_000_000
    """Submitted in all, split among the clients; the load stops early once they are."""
    base_port: int = 7600
    json_path: Path | None = None
    keep: bool = False
    samples_path: Path | None = None
    """Where to append, every 30 s of the run, one JSON line with the transactions committed
    so far and each node's resident and peak memory: how memory follows the chain's length."""


def verify_rate_per_core() -> float:
    """Ed25519 verifications per second on one core, as the node does them."""
    key = PrivateKey.generate()
    message = os.urandom(150)
    signature = key.sign(message)
    start = time.perf_counter()
    for _ in range(VERIFY_SAMPLE):
        verify(key.public_key, signature, message)
    return VERIFY_SAMPLE / (time.perf_counter() - start)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def cpu_s(pid: int, thread: int | None = None) -> float:
    """CPU time (user + system) a process, or one of its threads, has used so far, in seconds.

    A node's main thread (whose id is the process id) runs its event loop: the API,
    admission and signature checks, consensus and the peer streams. Execution, the
    consensus records and API reads run on other threads.
    """
    stat = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); after the command they are 12 and 13.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS now, VmHWM the peak), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(rf"{field}:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def _metric(url: str, name: str) -> float:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
    except OSError:
        return 0.0
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _setup(options: BenchOptions, directory: Path) -> tuple[Consortium, list[Path]]:
    specs = local_specs(options.nodes, options.base_port)
    keys = [PrivateKey.generate() for _ in range(options.clients)]
    identities = tuple(
        GenesisIdentity(
            key=public_key_text(key.public_key),
            institution=specs[i % len(specs)].name,
            role="applicant",
            name=f"load generator {i}",
        )
        for i, key in enumerate(keys)
    )
    genesis = create_consortium(
        directory / "consortium",
        specs,
        chain_id=f"notarychain-bench-{int(time.time())}",
        consensus=ConsensusSettings(batch_size_max=options.batch_max),
        families=code_hashes(),
        identities=identities,
    )
    key_paths = []
    for i, key in enumerate(keys):
        path = directory / f"client-{i}.key"
        save_private_key(path, key)
        key_paths.append(path)
    return Consortium(directory / "consortium", genesis, "json"), key_paths


def run_bench(options: BenchOptions) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="notarychain-bench-"))
    consortium, key_paths = _setup(options, directory)
    consortium.start()
    try:
        consortium.wait_until_agreed()
        verify_per_s = verify_rate_per_core()
        samples = _drive(options, consortium, key_paths, directory)
        proofs = measure_proofs(consortium, samples["evidence_sample"])
        view_changes = max(
            _metric(url, "notarychain_view_changes_total") for url in consortium.urls()
        )
        rss = [max(s) for s in samples["rss"]]
    finally:
        consortium.stop()
        if not options.keep:
            shutil.rmtree(directory, ignore_errors=True)
    cores = os.cpu_count() or 1
    ceiling = cores * verify_per_s / options.nodes
    latencies = samples["latencies_ms"]
    tx_per_s = samples["tx_per_s"]

    committed: int = samples["committed"]
    blocks: int = samples["blocks"]

    def per_tx_ms(node_cpu_s: list[float]) -> float:
        return round(1000 * statistics.fmean(node_cpu_s) / max(1, committed), 3)

    def per_block_ms(node_cpu_s: list[float]) -> float | None:
        return round(1000 * statistics.fmean(node_cpu_s) / blocks, 2) if blocks > 0 else None

    return {
        "nodes": options.nodes,
        "duration_s": options.duration_s,
        "offered_rate": options.rate or None,
        "concurrency": options.concurrency or None,
        "batch_max": options.batch_max,
        "submit_batch": options.submit_batch,
        "payload_bytes": options.payload_bytes,
        "submitted": samples["submitted"],
        "committed": samples["committed"],
        "refused": samples["refused"],
        "refusals": samples["refusals"],
        "errors": samples["errors"],
        "tx_per_s": round(tx_per_s, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p90": round(percentile(latencies, 0.90), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies, default=float("nan")), 1),
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "view_changes": int(view_changes),
        "node_cpu_ms_per_tx": per_tx_ms(samples["cpu_used_s"]),
        "node_cpu_ms_per_tx_event_loop": per_tx_ms(samples["loop_cpu_used_s"]),
        # Blocks made while the load ran (as the CPU above): a block costs a node some
        # work whatever its size (the protocol's messages, its records, its commit).
        "blocks": blocks,
        "tx_per_block": round(committed / blocks, 1) if blocks > 0 else None,
        "node_cpu_ms_per_block": per_block_ms(samples["cpu_used_s"]),
        "rss_mb_max": round(max(rss, default=0.0), 1),
        "rss_mb_per_node": [round(r, 1) for r in rss],
        "verify_per_s_per_core": round(verify_per_s, 1),
        "cores": cores,
        "ceiling_tx_per_s": round(ceiling, 1),
        "ceiling_fraction": round(tx_per_s / ceiling, 3) if ceiling else None,
        "proof": proofs,
        "data_dir": str(directory) if options.keep else None,
    }


def measure_proofs(consortium: Consortium, evidence_ids: list[str]) -> dict[str, Any]:
    """Fetch the proof of each committed evidence id from the nodes in turn, and check it
    against the genesis alone, as a verifier holding nothing else would: its size, the
    time to get it built (one request, the node's work plus a loopback round trip) and
    the time to verify it (every signature checked, nothing remembered between proofs).
    Bounded by `PROOFS_S_MAX`; ids whose proof could not be had, or did not verify, are
    counted, not fatal."""
    urls = consortium.urls()
    sizes: list[int] = []
    build_ms: list[float] = []
    verify_ms: list[float] = []
    unavailable = failed = 0
    deadline = time.monotonic() + PROOFS_S_MAX
    for index, evidence_id in enumerate(evidence_ids):
        data = None
        for attempt in range(PROOF_TRIES):
            if time.monotonic() > deadline:
                break
            url = f"{urls[(index + attempt) % len(urls)]}/v1/proofs/evidence/{evidence_id}"
            request = urllib.request.Request(url, headers={"Accept": "application/msgpack"})  # noqa: S310
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    data = response.read()
                break
            except (OSError, http.client.HTTPException):  # not yet provable, or a slow node
                time.sleep(0.2)
        if data is None:
            unavailable += 1
            continue
        elapsed_ms = 1000 * (time.perf_counter() - started)
        started = time.perf_counter()
        try:
            verified = verify_bundle(decode(ProofBundle, data), consortium.genesis)
            present = verified.state.get(evidence_key(bytes.fromhex(evidence_id))) is not None
        except LedgerError:  # undecodable, or does not verify
            present = False
        if not present:
            failed += 1
            continue
        verify_ms.append(1000 * (time.perf_counter() - started))
        build_ms.append(elapsed_ms)
        sizes.append(len(data))
    return {
        "count": len(sizes),
        "unavailable": unavailable,
        "failed": failed,
        "bytes_mean": round(statistics.fmean(sizes)) if sizes else None,
        "build_ms_p50": round(percentile(build_ms, 0.5), 2) if build_ms else None,
        "verify_ms_p50": round(percentile(verify_ms, 0.5), 2) if verify_ms else None,
    }


def _drive(
    options: BenchOptions, consortium: Consortium, key_paths: list[Path], directory: Path
) -> dict[str, Any]:
    urls = consortium.urls()
    processes = []
    for i, key_path in enumerate(key_paths):
        command = [
            sys.executable,
            "-m",
            "node.loadgen",
            "--key",
            str(key_path),
            "--chain-id",
            consortium.genesis.chain_id,
            "--duration",
            str(options.duration_s),
            "--payload-bytes",
            str(options.payload_bytes),
            "--tx-max",
            str(-(-options.transactions // len(key_paths))),
            "--submit-batch",
            str(options.submit_batch),
            "--out",
            str(directory / f"client-{i}.json"),
        ]
        for j in range(len(urls)):
            command += ["--node", urls[(i + j) % len(urls)]]
        if options.rate:
            command += ["--rate", str(options.rate / len(key_paths))]
        else:
            command += ["--concurrency", str(max(1, options.concurrency // len(key_paths)))]
        processes.append(subprocess.Popen(command))  # noqa: S603
    pids = [p.pid for p in consortium.processes.values()]
    rss: list[list[float]] = [[0.0] for _ in pids]
    cpu_start_s = [cpu_s(pid) for pid in pids]
    loop_cpu_start_s = [cpu_s(pid, pid) for pid in pids]
    height_start = _metric(urls[0], "notarychain_height")
    started = time.monotonic()
    deadline = started + options.duration_s + 120
    next_sample = started
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        for index, pid in enumerate(pids):
            rss[index].append(peak_rss_mb(pid))
        if options.samples_path is not None and time.monotonic() >= next_sample:
            next_sample += SAMPLES_INTERVAL_S
            _append_sample(options.samples_path, time.monotonic() - started, urls[0], pids)
        time.sleep(RSS_SAMPLE_S)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    for index, pid in enumerate(pids):
        rss[index].append(peak_rss_mb(pid))
    cpu_used_s = [cpu_s(pid) - start for pid, start in zip(pids, cpu_start_s, strict=True)]
    loop_cpu_used_s = [
        cpu_s(pid, pid) - start for pid, start in zip(pids, loop_cpu_start_s, strict=True)
    ]
    blocks = int(_metric(urls[0], "notarychain_height") - height_start)
    results = [
        json.loads((directory / f"client-{i}.json").read_text()) for i in range(len(key_paths))
    ]
    latencies = [v for r in results for v in r["latencies_ms"]]
    # A load that ran out of transactions before the duration ends with its last commit.
    last_commit = max((t for r in results for t in r["commit_times"]), default=0.0)
    window_end = min(options.duration_s, max(last_commit, WARMUP_S + 1))
    commits_in_window = sum(
        1 for r in results for t in r["commit_times"] if WARMUP_S <= t <= window_end
    )
    tx_per_s = commits_in_window / max(0.001, window_end - WARMUP_S)
    return {
        "submitted": sum(r["submitted"] for r in results),
        "committed": sum(r["committed"] for r in results),
        "refused": sum(r["refused"] for r in results),
        "refusals": _sum_counts(r["refusals"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "latencies_ms": latencies,
        "evidence_sample": [e for r in results for e in r["evidence_sample"]],
        "tx_per_s": tx_per_s,
        "rss": rss,
        "cpu_used_s": cpu_used_s,
        "loop_cpu_used_s": loop_cpu_used_s,
        "blocks": blocks,
    }


def _append_sample(path: Path, elapsed_s: float, url: str, pids: list[int]) -> None:
    sample = {
        "elapsed_s": round(elapsed_s),
        "committed": int(_metric(url, "notarychain_transactions_committed_total")),
        "rss_mb": [round(rss_mb(pid), 1) for pid in pids],
        "peak_rss_mb": [round(peak_rss_mb(pid), 1) for pid in pids],
    }
    with path.open("a") as out:
        out.write(json.dumps(sample) + "\n")


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for code, count in one.items():
            total[code] = total.get(code, 0) + count
    return total


def print_summary(figures: dict[str, Any]) -> None:
    latency = figures["latency_ms"]
    print(
        f"{figures['nodes']} nodes: {figures['tx_per_s']} tx/s committed "
        f"({figures['committed']} of {figures['submitted']} submitted; "
        f"{figures['refused']} refused, {figures['errors']} errors)"
    )
    if figures["refusals"]:
        print(f"refusals by code: {figures['refusals']}")
    print(
        f"latency ms: p50 {latency['p50']}, p90 {latency['p90']}, p99 {latency['p99']}, "
        f"max {latency['max']}"
    )
    rss = figures["rss_mb_per_node"]
    print(f"view changes {figures['view_changes']}; peak RSS per node (MB) {rss}")
    print(
        f"CPU per committed transaction, per node: {figures['node_cpu_ms_per_tx']} ms"
        f" ({figures['node_cpu_ms_per_tx_event_loop']} ms of it on the event loop)"
    )
    print(
        f"{figures['blocks']} blocks of {figures['tx_per_block']} transactions on average;"
        f" CPU per block, per node: {figures['node_cpu_ms_per_block']} ms"
    )
    print(
        f"Ed25519 verify {figures['verify_per_s_per_core']}/s per core x {figures['cores']} cores "
        f"/ {figures['nodes']} nodes = ceiling {figures['ceiling_tx_per_s']} tx/s; "
        f"achieved {figures['ceiling_fraction']}"
    )
    proof = figures["proof"]
    if proof["count"]:
        print(
            f"evidence proofs ({proof['count']} checked against the genesis): "
            f"{proof['bytes_mean']} bytes, built in {proof['build_ms_p50']} ms, "
            f"verified in {proof['verify_ms_p50']} ms (p50)"
        )
    if proof["unavailable"] or proof["failed"]:
        print(f"evidence proofs not had: {proof['unavailable']}; not verified: {proof['failed']}")
