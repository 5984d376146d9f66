"""``python -m orchestrator sync [FOLDER ...]``: deliver to MLflow what runs kept while it was unreachable.

A run whose tracking server (or SQLite store) did not answer before the end of
its wait keeps what it logged in ``<output folder>/mlflow-spool``, and says so.
This command finds every such folder at or under the given folders (default:
the current one), delivers each to the tracking URI it was meant for (or
``--tracking-uri``), in order, with the same code as the tracking worker
(:mod:`orchestrator.tracking.delivery`), and removes it once delivered. Delivering again
what MLflow already has changes nothing, so it is safe to run it twice.

    python -m orchestrator sync outputs/2024-05-01/12-00-00
    python -m orchestrator sync multirun/ --tracking-uri http://mlflow.internal:5000

Exit code 0 when everything was delivered (or nothing was pending), 1 otherwise,
2 for a path that does not exist or is not a folder. A spool whose run ended and
whose every record MLflow has (an earlier delivery got that far) is removed too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.tracking.delivery import Delivery, Outage
from orchestrator.tracking.spool import FOLDER, Spool, find_spools


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator sync", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("folders", nargs="*", type=Path, default=[Path.cwd()], help="where to look (.)")
    parser.add_argument("--tracking-uri", default=None, help="deliver here instead of the URI each run used")
    options = parser.parse_args(argv)
    missing = [str(folder) for folder in options.folders if not folder.exists()]
    if missing:
        print(f"Error: sync: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = [str(folder) for folder in options.folders if not folder.is_dir()]
    if files:
        print(
            f"Error: sync needs a folder (a run's or a sweep's output folder, or one above them), "
            f"not the file {', '.join(files)}.",
            file=sys.stderr,
        )
        return 2
    spools = find_spools(options.folders)
    if not spools:
        where = ", ".join(str(folder) for folder in options.folders)
        print(f"Nothing to deliver: no {FOLDER} folder at or under {where}.")
        return 0
    from orchestrator.tracking.store import open_client

    clients: dict[str, object] = {}
    left = 0
    for folder in spools:
        spool = Spool(folder)
        records = spool.records()
        recorded = next((r["tracking_uri"] for r in records if r["op"] == "start_run"), None)
        uri = options.tracking_uri or recorded
        if uri is None:
            print(f"{folder}: no start_run record, so no tracking URI; give --tracking-uri.", file=sys.stderr)
            left += 1
            continue
        try:
            client = clients.get(uri) or clients.setdefault(uri, open_client(uri))
            delivery = Delivery(spool, client)
            delivery.failed_before = True  # the run may exist: found by its key, never created twice
            done = delivery.deliver()
        except Outage as outage:
            print(f"{folder}: MLflow at {uri} still does not answer ({outage}); nothing is lost, try later.")
            left += 1
            continue
        except Exception as error:
            print(f"{folder}: cannot deliver to {uri}: {type(error).__name__}: {error}", file=sys.stderr)
            left += 1
            continue
        run_id = delivery.state.get("run_id")
        if delivery.complete:
            spool.remove()
            print(f"{folder}: delivered {done} records to run {run_id} at {uri}; the run is complete.")
        else:
            print(f"{folder}: delivered {done} records to run {run_id} at {uri} (the run has not ended).")
    return 1 if left else 0
