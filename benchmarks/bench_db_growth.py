"""Database growth per 1,000 offline generations, by table: packed (as stored) and unpacked.

Two workloads, each an offline run (the offline seed meta agent, the real sandbox, 1 worker)
on a fresh SQLite file:

* ``knob``: the workload of ``bench_vs_openevolve.py`` (``openevolve_workload/task.py``: one
  tunable ``X``, one ``val`` instance, 0 ms evaluations);
* ``review``: the built-in ``review`` task (400 train, 200 val instances: per-instance results
  dominate).

The file is measured (vacuumed, a copy) after ``--warm`` generations and at the end; growth is
the difference per generation, scaled linearly to 1,000 generations, per table (its indexes
included, from SQLite's ``dbstat``). The same two copies are then downgraded to revision 0005
(the unpacked format: plain JSON text, plain file bytes) and measured again, so the two columns
compare the same rows stored both ways. CPU is this process's and its children's (user +
system) over the measured generations; the load average is printed with it.

Usage:
    python benchmarks/bench_db_growth.py [--generations 300] [--review-generations 60]

With ``PYTHONPATH=<checkout>/src`` it measures another checkout; one without migration 0007
prints the stored sizes only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hyperagents import Run
from hyperagents.sandbox import get_sandbox
from hyperagents.storages import get_storage

WORKLOAD = Path(__file__).resolve().parent / "openevolve_workload"
UNPACKED_REVISION = "0005"


def table_bytes(path: Path) -> dict[str, int]:
    """Bytes of pages of each table of a vacuumed SQLite file, its indexes included."""
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
        sizes: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
    conn.close()
    sizes["(file)"] = path.stat().st_size
    return sizes


def copy_database(path: Path, out: Path) -> None:
    """Copy a SQLite database that may be open (its WAL included) with the backup API."""
    with sqlite3.connect(path) as source, sqlite3.connect(out) as target:
        source.backup(target)
    source.close()
    target.close()


def unpacked_copy(path: Path, out: Path) -> Path | None:
    """A copy of the database at ``path`` downgraded to the unpacked revision (None: this
    checkout has no packing)."""
    from hyperagents.storages._rdb import HEAD_REVISION

    if HEAD_REVISION < "0007":
        return None
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from hyperagents.storages._rdb.storage import ALEMBIC_DIR

    copy_database(path, out)
    engine = sa.create_engine(f"sqlite:///{out}")
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(ALEMBIC_DIR))
        config.attributes["connection"] = conn
        command.downgrade(config, UNPACKED_REVISION)
    engine.dispose()
    return out


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(
    label: str, tmp: Path, make_task: Callable[[], object], generations: int, warm: int
) -> None:
    """Run ``generations`` offline generations and print the growth per table."""
    path = tmp / f"{label}.db"
    store = get_storage(f"sqlite:///{path}")
    run = Run.create(task=make_task(), name=label, storage=store, sandbox=get_sandbox("auto"))
    run.optimize(generations=warm)
    copy_database(path, tmp / f"{label}-warm.db")
    cpu, wall, load = cpu_seconds(), time.perf_counter(), os.getloadavg()[0]
    run.optimize(generations=generations - warm)
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    load_end = os.getloadavg()[0]
    store.close()
    copy_database(path, tmp / f"{label}-end.db")
    n = generations - warm
    packed = [table_bytes(tmp / f"{label}-{when}.db") for when in ("warm", "end")]
    plain_paths = [
        unpacked_copy(tmp / f"{label}-{when}.db", tmp / f"{label}-{when}-plain.db")
        for when in ("warm", "end")
    ]
    plain = [table_bytes(p) for p in plain_paths if p is not None]
    print(
        f"\n{label}: {n} generations after {warm} ({wall:.0f} s wall, "
        f"{cpu * 1000 / n:.0f} ms CPU per generation, load {load:.1f} -> {load_end:.1f})"
    )
    print(f"  {'MB per 1,000 generations':<26}{'unpacked':>10}{'packed':>10}")
    tables = sorted(packed[1], key=lambda t: -(packed[1][t] - packed[0].get(t, 0)))
    for table in tables:
        after = (packed[1][table] - packed[0].get(table, 0)) * 1000 / n / 1e6
        before = (plain[1].get(table, 0) - plain[0].get(table, 0)) * 1000 / n / 1e6 if plain else 0
        if table == "(file)" or abs(after) >= 0.005 or abs(before) >= 0.005:
            shown = f"{before:10.2f}" if plain else f"{'-':>10}"
            print(f"  {table:<26}{shown}{after:10.2f}")


def knob_task(tmp: Path) -> Callable[[], object]:
    """The ``knob`` workload's task spec, in a copy of its folder with 0 ms evaluations."""
    folder = tmp / "workload"
    shutil.copytree(WORKLOAD, folder)
    (folder / "workload.json").write_text('{"eval_ms": 0}', encoding="utf-8")
    return lambda: f"{folder / 'task.py'}:TuneXTask"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=300, help="knob generations (0: skip)")
    parser.add_argument("--review-generations", type=int, default=60, help="0: skip review")
    parser.add_argument("--warm", type=int, default=20, help="generations before measuring")
    parser.add_argument("--keep", type=Path, help="a folder to keep the databases in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = args.keep if args.keep is not None else Path(name)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.generations:
            measure("knob", tmp, knob_task(tmp), args.generations, args.warm)
        if args.review_generations:
            measure("review", tmp, lambda: "review", args.review_generations, args.warm)


if __name__ == "__main__":
    main()
