"""`jaxalign survey ...`: simulate, analyze, validate and convert ratings (no jax imported)."""

from __future__ import annotations

import json
from pathlib import Path

from jaxalign.cli.common import (
    EPILOG,
    add_common,
    add_overwrite,
    add_parser,
    add_ratings,
    config_from,
    ratings_flags,
)
from jaxalign.errors import JaxalignError

REPORT_HEADER = "file,row,column,value,problem"


def cmd_simulate(args) -> int:
    """survey simulate."""
    from jaxalign.survey.simulate import write_simulation

    flags = [f"simulate.seed={args.seed}"] if args.seed is not None else []
    flags += [f"simulate.participants={args.participants}"] if args.participants is not None else []
    cfg = config_from(args, flags)
    manifest = write_simulation(args.out, cfg.simulate, cfg.ratings, overwrite=args.overwrite)
    print(
        f"wrote {args.out}/ratings.parquet: {manifest['participants']} raters, "
        f"{manifest['ratings']} ratings ({manifest['careless_raters']} careless); "
        f"Aligniverse tables in {args.out}/aligniverse/"
    )
    return 0


def cmd_analyze(args) -> int:
    """survey analyze."""
    from jaxalign.io import check_output
    from jaxalign.survey.analyze import COMMAND, write_analysis
    from jaxalign.survey.readers import load_ratings
    from jaxalign.survey.responses import find_simulation

    cfg = config_from(args, ratings_flags(args))
    check_output(args.out, COMMAND, inputs=[args.ratings], overwrite=args.overwrite)
    frame, report = load_ratings(args.ratings, cfg.ratings)
    out = Path(args.out)
    extra = {
        "raters_excluded_attention": report.raters_excluded_attention,
        "rows_dropped_invalid": report.rows_dropped,
    }
    dropped = report.problems.to_csv() if report.problems else ""
    truth = find_simulation(args.ratings)
    records = write_analysis(
        frame, cfg.analysis, out, extra, dropped, truth=truth, overwrite=args.overwrite
    )
    significant = sorted(
        (r for r in records if r["significant"]), key=lambda r: -abs(r["pct_diff"])
    )
    print(
        f"{len(records)} comparisons, {len(significant)} significant; "
        f"wrote {out}/effects.json, summary.md, plots"
    )
    for r in significant[:10]:
        print(
            f"  {r['dimension']:<20} {r['attribute']}={r['group']} vs {r['reference']}: "
            f"{r['pct_diff']:+.1f}% [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"
        )
    return 0


def _is_report(path: Path) -> bool:
    """True when `path` starts with the header of a problems report (an earlier --report)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().strip() == REPORT_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def cmd_validate(args) -> int:
    """survey validate: every problem found; with --report, all of them in a CSV."""
    from jaxalign.io import check_output, staged_files
    from jaxalign.survey.readers import ReadReport, load_ratings

    flags = ratings_flags(args) + (["ratings.strict=false"] if args.report else [])
    cfg = config_from(args, flags)
    if args.report:
        check_output(
            args.report,
            "survey validate",
            kind="file",
            inputs=[args.ratings],
            overwrite=args.overwrite,
            owned=_is_report,
        )
    report = ReadReport()
    try:
        frame, report = load_ratings(args.ratings, cfg.ratings, report)
    except JaxalignError as err:
        if not (args.report and report.problems):
            raise
        # Written even when every row was invalid: that is when the report is needed most.
        with staged_files(args.report) as (tmp,):
            tmp.write_text(report.problems.to_csv())
        raise JaxalignError(f"{err}; every problem is listed in {args.report}") from None
    if args.report:
        with staged_files(args.report) as (tmp,):
            tmp.write_text(report.problems.to_csv())
    _print_validation(args, report, frame)
    return 0


def _print_validation(args, report, frame) -> None:
    """A human summary of what reading found (or, with --json, the counts as JSON)."""
    if args.json:
        kept = {"rows_kept": len(frame), "raters_kept": int(frame["rater_id"].nunique())}
        print(json.dumps({**report.summary(), **kept}, indent=2))
        return
    problems = len(report.problems)
    print(
        f"{args.ratings}: {report.rows_read} rows read, {len(frame)} kept "
        f"from {frame['rater_id'].nunique()} raters"
    )
    print(f"  invalid rows dropped:       {report.rows_dropped} ({problems} problems)")
    print(f"  raters failing attention:   {report.raters_excluded_attention}")
    for note in report.notes:
        print(f"  note: {note}")
    if args.report:
        print(f"  problems report:            {args.report}")
    elif problems:
        print("  rerun with --report FILE to list every problem")


def cmd_convert(args) -> int:
    """survey convert."""
    from jaxalign.io import check_output, staged_files
    from jaxalign.survey.readers import SUFFIXES, load_ratings, write_long

    cfg = config_from(args, ratings_flags(args))
    if Path(args.out).suffix.lower() not in SUFFIXES:
        raise JaxalignError(
            f"{args.out}: unsupported output type; expected .parquet, .csv or .jsonl"
        )
    check_output(
        args.out, "survey convert", kind="file", inputs=[args.ratings], overwrite=args.overwrite
    )
    frame, report = load_ratings(args.ratings, cfg.ratings)
    with staged_files(args.out) as (tmp,):
        write_long(frame, tmp, suffix=Path(args.out).suffix)
    print(
        f"wrote {args.out}: {len(frame)} ratings from {frame['rater_id'].nunique()} raters "
        f"({report.rows_dropped} invalid rows dropped, "
        f"{report.raters_excluded_attention} raters excluded)"
    )
    return 0


def register(groups) -> None:
    """Add the `survey` group and its commands."""
    survey = groups.add_parser(
        "survey", help="simulate, validate, convert and analyse survey ratings"
    )
    cmds = survey.add_subparsers(dest="command", metavar="<command>", required=True)
    p = add_parser(cmds, "simulate", help="write a calibrated synthetic survey", epilog=EPILOG)
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory (aligniverse/, ratings.parquet, simulation.json)",
    )
    p.add_argument("--seed", type=int, help="random seed (default: simulate.seed, 0)")
    p.add_argument(
        "--participants", type=int, help="number of raters (default: simulate.participants, 1095)"
    )
    add_overwrite(p, "a non-empty --out directory")
    add_common(p)
    p.set_defaults(func=cmd_simulate)
    p = add_parser(
        cmds,
        "analyze",
        help="demographic differences in ratings, with CIs and plots",
        epilog=EPILOG,
    )
    add_ratings(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory (effects.json, summary.md, plots)",
    )
    add_overwrite(p, "a non-empty --out directory")
    add_common(p, ratings=True)
    p.set_defaults(func=cmd_analyze)
    p = add_parser(
        cmds, "validate", help="check a ratings file and print what would be dropped", epilog=EPILOG
    )
    add_ratings(p)
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write every problem to this CSV (reads leniently; written even with 0 problems)",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    add_overwrite(p, "an existing --report file")
    add_common(p, ratings=True)
    p.set_defaults(func=cmd_validate)
    p = add_parser(
        cmds,
        "convert",
        help="convert ratings (e.g. an Aligniverse export) to the long format",
        epilog=EPILOG,
    )
    add_ratings(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output: .parquet, .csv or .jsonl")
    add_overwrite(p, "an existing --out file")
    add_common(p, ratings=True)
    p.set_defaults(func=cmd_convert)
