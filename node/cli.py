"""`notarychain-node`: the operator's command line (also `python -m node`).

Every failure an operator can cause (a bad flag, a missing key, a corrupt
config, a genesis that does not match) ends with one line on stderr saying
what is wrong and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ledger import __version__
from ledger.errors import LedgerError
from ledger.tx import BATCH_TRANSACTIONS_MAX
from node import eventloop
from node.app import NodeStopped, StartupError, load_genesis_file, run_until_signal
from node.bench import BenchOptions, print_summary, run_bench
from node.config import ConfigError, load_node_config
from node.families import code_hashes
from node.logs import configure
from node.material import (
    InstitutionSpec,
    MaterialError,
    add_institution,
    create_consortium,
    passphrase_from_env,
)
from node.soak import SoakOptions, run_soak
from node.storage import StorageError, backup, restore
from node.up import UpError, run_up

EXIT_USAGE = 2
EXIT_FAILED = 1


class Parser(argparse.ArgumentParser):
    """argparse, but a command-line mistake is one line on stderr (then exit status 2),
    not the usage block; `--help` still prints the full usage. Subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())}\n")


def _institution(text: str) -> tuple[str, str]:
    name, sep, role = text.partition(":")
    if not sep or not name or role not in ("notary", "enterprise", "observer"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME:ROLE with ROLE notary, enterprise or observer"
        )
    return name, role


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="notarychain-node",
        description="Run a Notary chain node: one per institution of the consortium.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="create the consortium's keys, certificates, genesis and node configs",
        description=(
            "Create a consortium: a CA, and for each institution its admin key, node key, "
            "TLS certificate and node.toml, plus DIR/genesis.json. Keys are written 0600 and "
            "encrypted when NOTARYCHAIN_KEY_PASSPHRASE is set."
        ),
        epilog=(
            "example: notarychain-node init --out consortium --institution notary-office:notary "
            "--institution acme:enterprise --institution globex:enterprise "
            "--institution court:observer"
        ),
    )
    init.add_argument("--out", type=Path, required=True, help="directory to create (must be empty)")
    init.add_argument(
        "--institution",
        type=_institution,
        action="append",
        required=True,
        metavar="NAME:ROLE",
        help="an institution and its role (notary, enterprise, observer); repeat for each",
    )
    init.add_argument("--chain-id", help="chain id (default: notarychain-<unix time>)")
    init.add_argument("--host", default="127.0.0.1", help="host every node listens on")
    init.add_argument(
        "--hosts", help="comma-separated host per institution, in order (overrides --host)"
    )
    init.add_argument("--base-port", type=int, default=7100, help="first API port (default 7100)")

    run = commands.add_parser(
        "run",
        help="run one node",
        description="Run one institution's node from its node.toml.",
        epilog="example: notarychain-node run --config consortium/notary-office/node.toml",
    )
    run.add_argument("--config", type=Path, required=True, help="the node's node.toml")
    run.add_argument("--log-format", choices=("json", "text"), help="override [log] format")

    up = commands.add_parser(
        "up",
        help="start a local consortium for development (creates it if needed)",
        description=(
            "Create a local consortium in DIR if it is empty, start every node as its own "
            "process, wait until they agree, print their addresses and write DIR/client.toml. "
            "Ctrl-C stops them all; running it again resumes the same chain."
        ),
        epilog="example: notarychain-node up --nodes 4 --data ./notarychain-data",
    )
    up.add_argument("--nodes", type=int, default=4, help="number of nodes (default 4)")
    up.add_argument("--data", type=Path, default=Path("notarychain-data"), help="directory")
    up.add_argument("--base-port", type=int, default=7100, help="first API port (default 7100)")
    up.add_argument("--log-format", choices=("json", "text"), default="text")

    add = commands.add_parser(
        "add-institution",
        help="create the material for an institution joining the consortium",
        description=(
            "Create keys, a CA-signed TLS certificate and node.toml for a new institution in the "
            "consortium folder (it needs ca.key), and DIR/NAME/member.json for the governance "
            "proposal that adds it. Start its node at once: it follows the chain, and becomes a "
            "validator at the height the approved proposal names."
        ),
        epilog=(
            "example: notarychain-node add-institution --consortium consortium "
            "--institution court:observer --api-port 7104 --peer-port 7204"
        ),
    )
    add.add_argument("--consortium", type=Path, required=True)
    add.add_argument("--institution", type=_institution, required=True, metavar="NAME:ROLE")
    add.add_argument("--host", default="127.0.0.1")
    add.add_argument("--api-port", type=int, required=True)
    add.add_argument("--peer-port", type=int, required=True)

    backup = commands.add_parser(
        "backup",
        help="copy a node's database consistently, while it runs",
        description=(
            "Write a consistent copy of the node's database to FILE while the node keeps "
            "running. A node restored from it catches up from its peers and does not vote "
            "until it is past anything it may have signed after the copy was taken."
        ),
        epilog="example: notarychain-node backup --config acme/node.toml --out acme.backup",
    )
    backup.add_argument("--config", type=Path, required=True)
    backup.add_argument("--out", type=Path, required=True)
    restore = commands.add_parser(
        "restore",
        help="put a backup in place as a stopped node's database",
        description="Restore a backup into the node's (empty) data directory; start it after.",
        epilog="example: notarychain-node restore --config acme/node.toml --from acme.backup",
    )
    restore.add_argument("--config", type=Path, required=True)
    restore.add_argument("--from", dest="source", type=Path, required=True)

    soak = commands.add_parser(
        "soak",
        help="run real nodes under a nemesis while a client writes, then check nothing was lost",
        description=(
            "Real node processes, each behind a fault-injecting proxy; a client writes "
            "continuously; a nemesis kills nodes (never more than f at once), kills the primary, "
            "partitions and slows links, and skews clocks within the bound. At the end it heals "
            "everything and checks that every acknowledged transaction is on every node and that "
            "the chains and state roots are identical. Exits 1 if anything was lost."
        ),
        epilog="example: notarychain-node soak --duration 600 --json soak.json",
    )
    soak.add_argument("--duration", type=float, default=600.0, help="seconds of faults")
    soak.add_argument("--nodes", type=int, default=4)
    soak.add_argument("--rate", type=float, default=20.0, help="transactions per second")
    soak.add_argument("--seed", type=int, default=1)
    soak.add_argument("--json", type=Path, help="write the report here")

    _add_bench(commands)
    return parser


def _add_bench(commands: argparse._SubParsersAction[Parser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure throughput, latency and memory of a local consortium",
        description=(
            "Start a local consortium of real node processes, drive it with signed evidence "
            "registrations from separate client processes, and report committed tx/s, commit "
            "latency percentiles, view changes, peak memory per node and the Ed25519 ceiling."
        ),
        epilog="example: notarychain-node bench --nodes 4 --duration 60 --rate 1000 --json b.json",
    )
    bench.add_argument("--nodes", type=int, default=4)
    bench.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    load = bench.add_mutually_exclusive_group(required=True)
    load.add_argument("--rate", type=float, help="open loop: transactions offered per second")
    load.add_argument("--concurrency", type=int, help="closed loop: transactions in flight")
    bench.add_argument("--batch-max", type=int, default=2048, help="transactions per block")
    bench.add_argument("--payload-bytes", type=int, default=100)
    bench.add_argument("--clients", type=int, default=2, help="load-generator processes")
    bench.add_argument(
        "--submit-batch",
        type=int,
        default=1,
        help="transactions per submission request (default 1; up to 1024 by "
        "POST /v1/transactions/batch)",
    )
    bench.add_argument(
        "--transactions",
        type=int,
        default=1_000_000,
        help="stop submitting after this many transactions in all (default 1,000,000)",
    )
    bench.add_argument(
        "--keep", action="store_true", help="keep the consortium's data directory for inspection"
    )
    bench.add_argument("--base-port", type=int, default=7600)
    bench.add_argument("--json", type=Path, help="write the figures here")
    bench.add_argument(
        "--samples",
        type=Path,
        help="append a JSON line every 30 s: transactions committed, each node's memory",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "run":
            return _run(args)
        if args.command == "up":
            return run_up(args.nodes, args.data, args.base_port, args.log_format)
        if args.command == "bench":
            return _bench(args)
        if args.command in ("backup", "restore"):
            return _backup_or_restore(args)
        if args.command == "add-institution":
            return _add_institution(args)
        if args.command == "soak":
            return _soak(args)
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


def _fail(message: str) -> int:
    print(f"notarychain-node: {message}", file=sys.stderr)
    return EXIT_FAILED


def _init(args: argparse.Namespace) -> int:
    names = [name for name, _ in args.institution]
    if len(set(names)) != len(names):
        return _fail("institution names must be unique")
    hosts = args.hosts.split(",") if args.hosts else [args.host] * len(names)
    if len(hosts) != len(names):
        return _fail(f"--hosts lists {len(hosts)} hosts for {len(names)} institutions")
    if not 1 <= args.base_port <= 65535 - 100 - len(names):
        return _fail("--base-port leaves no room for the nodes' ports")
    specs = [
        InstitutionSpec(name, role, host, args.base_port + 100 + i, args.base_port + i)
        for i, ((name, role), host) in enumerate(zip(args.institution, hosts, strict=True))
    ]
    try:
        genesis = create_consortium(args.out, specs, chain_id=args.chain_id, families=code_hashes())
    except (MaterialError, LedgerError, ValueError, OSError) as exc:
        return _fail(str(exc))
    print(f"created consortium {genesis.chain_id} in {args.out}")
    for spec in specs:
        config = args.out / spec.name / "node.toml"
        print(f"  {spec.name:20} {spec.role:10} notarychain-node run --config {config}")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_node_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    configure(config.institution, args.log_format or config.log.format, config.log.level, None)
    try:
        eventloop.run(run_until_signal(config))
    except (StartupError, NodeStopped) as exc:
        return _fail(str(exc))
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.nodes < 1 or args.duration <= 0 or args.clients < 1 or args.transactions < 1:
        return _fail("--nodes, --duration, --clients and --transactions must be positive")
    if not 1 <= args.submit_batch <= BATCH_TRANSACTIONS_MAX:
        return _fail(f"--submit-batch must be from 1 to {BATCH_TRANSACTIONS_MAX}")
    options = BenchOptions(
        nodes=args.nodes,
        duration_s=args.duration,
        rate=args.rate or 0.0,
        concurrency=args.concurrency or 0,
        batch_max=args.batch_max,
        payload_bytes=args.payload_bytes,
        clients=args.clients,
        submit_batch=args.submit_batch,
        transactions=args.transactions,
        base_port=args.base_port,
        json_path=args.json,
        keep=args.keep,
        samples_path=args.samples,
    )
    try:
        figures = run_bench(options)
    except (UpError, OSError) as exc:
        return _fail(str(exc))
    print_summary(figures)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _backup_or_restore(args: argparse.Namespace) -> int:
    try:
        config = load_node_config(args.config)
        database = config.data_dir / "chain.db"
        if args.command == "backup":
            if not database.exists():
                return _fail(f"{database}: no database to back up")
            head = backup(database, args.out)
            print(f"backed up height {head.height} to {args.out}")
        else:
            genesis = load_genesis_file(config.genesis_path)
            head = restore(args.source, database, genesis.genesis_hash)
            print(f"restored height {head.height} into {database}; start the node to catch up")
    except (ConfigError, StorageError, StartupError, OSError) as exc:
        return _fail(str(exc))
    return 0


def _add_institution(args: argparse.Namespace) -> int:
    name, role = args.institution
    for port in (args.api_port, args.peer_port):
        if not 1 <= port <= 65535:
            return _fail(f"port {port} is out of range")
    spec = InstitutionSpec(name, role, args.host, args.peer_port, args.api_port)
    try:
        directory, _ = add_institution(args.consortium, spec, passphrase_from_env())
    except (MaterialError, LedgerError, OSError) as exc:
        return _fail(str(exc))
    print(f"created {directory}")
    config = directory / "node.toml"
    print(f"  run its node now (it follows the chain): notarychain-node run --config {config}")
    print(
        "  then an administrator proposes it: notarychain --as ADMIN governance propose "
        f"--add-institution {directory / 'member.json'} --at HEIGHT"
    )
    return 0


def _soak(args: argparse.Namespace) -> int:
    if args.nodes < 4 or args.duration <= 0 or args.rate <= 0:
        return _fail("a soak needs at least 4 nodes, a positive duration and rate")
    options = SoakOptions(args.duration, args.nodes, args.rate, args.seed, args.json)
    try:
        summary = run_soak(options)
    except (RuntimeError, OSError) as exc:
        return _fail(str(exc))
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else EXIT_FAILED
