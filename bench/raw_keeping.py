"""What keeping received mail costs, by size: a row of the database against a file.

    .venv/bin/python -m bench.raw_keeping [--batches 20]

Batches of fifty messages of one size, each batch kept both ways on SQLite as the intake
keeps them: as rows written by one statement in the batch's transaction (`keep_rows`,
then the commit, then the checkpoint that copies them from the WAL into the database
file, which SQLite would otherwise run later), and as files of the raw store
(`RawStore.batch`: written, synced together, renamed). The sizes are those of real
mail: a short plain reply, a Gmail or Apple Mail message with its HTML twin, an Outlook
HTML message, one with a signature image, one with a document attached. Printed:
milliseconds a batch, and rows / files.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from maild.db.database import Database
from maild.db.migrate import upgrade
from maild.db.raw_mail import keep_rows
from maild.db.rawstore import RawStore

SIZES = {"plain reply": 2_000, "Gmail, HTML twin": 12_000, "Outlook HTML": 45_000,
         "signature image": 120_000, "document": 250_000}
BATCH = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-bench-raw-") as temp:
        database = Database(f"sqlite:///{temp}/maild.db")
        upgrade(database)
        files = RawStore(Path(temp) / "raw")
        checkpointing = sqlite3.connect(f"{temp}/maild.db", isolation_level=None)
        print(f"{args.batches} batches of {BATCH} a size, SQLite in WAL, synchronous=FULL")
        for name, size in SIZES.items():
            in_rows = in_files = 0.0
            for _ in range(args.batches):
                batch = [os.urandom(size) for _ in range(BATCH)]
                started = time.perf_counter()
                with database.transaction() as session:
                    keep_rows(session, {os.urandom(32).hex(): raw for raw in batch})
                # What the WAL's later checkpoint costs for them, paid here.
                checkpointing.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                in_rows += time.perf_counter() - started
                started = time.perf_counter()
                with files.batch():
                    for raw in batch:
                        files.put(raw)
                in_files += time.perf_counter() - started
            print(f"  {name:<18} {size // 1000:>4} KB: rows {in_rows / args.batches * 1000:6.1f} ms"
                  f", files {in_files / args.batches * 1000:6.1f} ms a batch: "
                  f"rows / files = {in_rows / in_files:.2f}")
        checkpointing.close()
        database.dispose()


if __name__ == "__main__":
    main()
