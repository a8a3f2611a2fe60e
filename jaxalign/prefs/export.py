"""`prefs export`: preference records -> a `datasets` directory TRL's DPOTrainer loads as is.

The directory is a `DatasetDict` saved with `save_to_disk`, one dataset per split present
(train, validation, test; records without `split` get the hashed validation split of
`data.validation_fraction`). Columns: TRL's `prompt`, `chosen`, `rejected` in its
conversational form (message lists: jaxalign renders a text prompt as one user turn with the
chat template, and TRL does the same only for messages), the prompt conditioned on the rater
group as `data.conditioning` says, plus `weight`, `soft_label` and `group`. Written
atomically; an existing non-empty target is replaced only with `--overwrite`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxalign.data.records import SPLITS, read_records
from jaxalign.errors import JaxalignError

EXTRA = ("weight", "soft_label", "group")


def trl_rows(records: list[dict], conditioning: str = "none") -> dict[str, list[dict]]:
    """Rows per split: TRL's conversational columns (as jaxalign would render them) and extras."""
    from jaxalign.data.chat import as_messages, prompt_messages

    out: dict[str, list[dict]] = {}
    for r in records:
        row = {
            "prompt": prompt_messages(r["prompt"], conditioning, r["group"]),
            "chosen": as_messages(r["chosen"], "assistant"),
            "rejected": as_messages(r["rejected"], "assistant"),
        }
        out.setdefault(r["split"], []).append({**row, **{k: r[k] for k in EXTRA}})
    return {s: out[s] for s in SPLITS if s in out}


def check_target(prefs: Path, out: Path, overwrite: bool) -> None:
    """The shared output policy (jaxalign/io.py): never the input; only our own or empty output."""
    from jaxalign.io import check_output

    check_output(out, "prefs export", inputs=[prefs], overwrite=overwrite)


def export_trl(
    prefs: str | Path,
    out: str | Path,
    validation_fraction: float = 0.1,
    overwrite: bool = False,
    conditioning: str = "none",
) -> dict[str, int]:
    """Write `prefs` (any format `train` reads) as a TRL `datasets` directory; records per split."""
    from jaxalign.io import staged_dir

    prefs, out = Path(prefs), Path(out)
    check_target(prefs, out, overwrite)
    splits = trl_rows(read_records(prefs, None, validation_fraction), conditioning)
    try:
        import datasets
    except ImportError:
        raise JaxalignError(
            "prefs export needs the `datasets` package: pip install datasets"
        ) from None
    datasets.disable_progress_bars()
    table = datasets.DatasetDict(
        {s: datasets.Dataset.from_list(rows) for s, rows in splits.items()}
    )
    with staged_dir(out, "prefs export", overwrite) as tmp:
        table.save_to_disk(str(tmp))
    return {s: len(rows) for s, rows in splits.items()}


def cmd_export(args: argparse.Namespace) -> int:
    """prefs export."""
    from jaxalign.config import load_config

    cfg = load_config(args.config, args.overrides)
    data = cfg.data
    counts = export_trl(
        args.prefs, args.out, data.validation_fraction, args.overwrite, data.conditioning
    )
    shown = ", ".join(f"{s} {n}" for s, n in counts.items())
    print(
        f"wrote {args.out}: {sum(counts.values())} records ({shown}); "
        f"load with datasets.load_from_disk('{args.out}')"
    )
    return 0


def add_parser(commands, common) -> None:
    """Register `prefs export` on the `prefs` subcommand group (`common` adds shared options)."""
    p = commands.add_parser(
        "export",
        help="write preference records as a datasets directory for TRL's DPOTrainer",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--prefs",
        required=True,
        metavar="PATH",
        help="prefs build JSONL or TRL-format data (JSONL, Parquet, datasets directory)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output datasets directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out (default: refuse)",
    )
    common(p)
    p.set_defaults(func=cmd_export)
