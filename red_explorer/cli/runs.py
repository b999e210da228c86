"""`red-explorer runs list|show|rm|export|notebook`: the runs kept in the run store (owner "local");
`runs owners|prune`: every owner's use of the store, and removing the visitors' folders idle for days."""

from __future__ import annotations

import argparse
from pathlib import Path

from red_explorer.cli.common import print_json

OWNER = "local"


def add_home_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="folder holding runs/ (default: $RED_EXPLORER_HOME, else ~/.cache/red_explorer)")


def store_for(home: str | None):
    """The run store under ``home`` (or the default home)."""
    from red_explorer.runs.home import default_home
    from red_explorer.runs.store import RunStore

    return RunStore(Path(home).expanduser() / "runs" if home else default_home() / "runs")


def register(commands) -> None:
    parser = commands.add_parser("runs", help="list, show, delete or export the runs kept by train")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every kept run, oldest first")
    listing.add_argument("--json", action="store_true", help="print the run records as JSON")
    show = actions.add_parser("show", help="one run's record (run.json) and folder")
    remove = actions.add_parser("rm", help="delete one run")
    export = actions.add_parser("export", help="zip a run's edits and metrics.json (the app imports it)")
    export.add_argument("--out", required=True, help="folder to write the zip into")
    notebook = actions.add_parser("notebook", help="write a Jupyter notebook that reproduces the run")
    notebook.add_argument("--out", required=True, help="the .ipynb file to write")
    notebook.add_argument("--data", action="append", default=[], help="the run's data file if it moved (repeatable)")
    owners = actions.add_parser("owners", help="every owner of the store (the app's visitors too), the largest first")
    prune = actions.add_parser("prune", help="delete the app visitors' folders with nothing written for DAYS days")
    prune.add_argument("--idle-days", type=float, required=True, metavar="DAYS", help="days since the last write")
    prune.add_argument("--yes", action="store_true", help="delete them (without it, only list what would go)")
    for action in (listing, show, remove, export, notebook, owners, prune):
        add_home_argument(action)
        if action not in (listing, owners, prune):
            action.add_argument("key", metavar="RUN", help="a run id, a unique prefix of one, or a run's label")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    store = store_for(args.home)
    if args.action == "list":
        _list(store, args.json)
        return
    if args.action in ("owners", "prune"):
        _owners(store, args)
        return
    record = store.find(OWNER, args.key)
    if args.action == "show":
        print_json(record.to_dict() | {"path": str(record.path)})
    elif args.action == "rm":
        store.delete(OWNER, record.id)
        print(f"deleted run {record.id} ({record.label})")
    elif args.action == "export":
        print(store.export_zip(OWNER, record.id, args.out))
    elif args.action == "notebook":
        from red_explorer.runs.notebook import write_run_notebook

        print(write_run_notebook(record, args.out, args.data))


def _list(store, as_json: bool) -> None:
    runs = store.list(OWNER)
    if as_json:
        print_json([record.to_dict() | {"path": str(record.path)} for record in runs])
        return
    if not runs:
        print(f"no runs in {store.root / OWNER}: `red-explorer train` keeps each run it trains")
        return
    print(f"{'id':<22}  {'created (UTC)':<19}  {'size':>10}  {'val loss after':>14}  label")
    for record in runs:
        loss = record.metrics_after.get("loss")
        loss_text = "–" if loss is None else f"{loss:.4f}"
        print(
            f"{record.id:<22}  {record.created[:19].replace('T', ' '):<19}  {_size(record.method_bytes):>10}  "
            f"{loss_text:>14}  {record.label}"
        )


def _owners(store, args: argparse.Namespace) -> None:
    from red_explorer.runs.owners import idle_visitors, owner_usages, remove_owner

    usages = owner_usages(store) if args.action == "owners" else idle_visitors(store, args.idle_days)
    for usage in usages:
        print(f"{usage.owner:<32}  {usage.runs:>4} runs  {_size(usage.bytes):>10}  {usage.last_write:%Y-%m-%d %H:%M}")
    if args.action == "owners":
        print(f"{len(usages)} owners, {_size(sum(usage.bytes for usage in usages))} in {store.root}")
        return
    total = _size(sum(usage.bytes for usage in usages))
    if not args.yes:
        print(f"{len(usages)} visitors idle for {args.idle_days:g} days or more ({total}); --yes deletes them")
        return
    for usage in usages:
        remove_owner(store, usage.owner)
    print(f"deleted {len(usages)} visitors' folders ({total}) and their share links")


def _size(count: int) -> str:
    from red_explorer.runs.size import human_bytes

    return human_bytes(count)


def keep_trained_run(args: argparse.Namespace, result, loaded, data) -> str | None:
    """Keep what `train` trained in the run store (only the main process under DDP); returns the run id."""
    from red_explorer.engine.distributed import is_main_process
    from red_explorer.runs.record import data_fingerprint

    if not is_main_process():
        return None
    fingerprint = data_fingerprint(args.data, data, args.validation_data)
    return store_for(args.home).save(OWNER, result, loaded, fingerprint).id
