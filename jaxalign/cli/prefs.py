"""`jaxalign prefs build`: ratings -> preference records + manifest (no jax imported)."""

from __future__ import annotations

import json

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


def _flags(args) -> list[str]:
    """Config overrides implied by the command's options."""
    flags = ratings_flags(args)
    if args.group:
        flags.append("prefs.groups=" + json.dumps(args.group))
    if args.dimension and args.dimensions:
        raise JaxalignError("give --dimension or --dimensions, not both")
    dims = [args.dimension] if args.dimension else (args.dimensions or "").split(",")
    dims = [d.strip() for d in dims if d.strip()]
    if dims:
        flags.append("prefs.dimensions=" + json.dumps(dims))
    if args.weights:
        flags.append("prefs.weights=" + json.dumps(parse_weights(args.weights)))
    for flag in ("combine", "scale", "disagreement", "binary_neutral"):
        value = getattr(args, flag)
        if value is not None:
            flags.append(f"prefs.{flag}={value}")
    if args.keep_ties:
        flags.append("prefs.keep_ties=true")
    return flags


def cmd_prefs_build(args) -> int:
    """prefs build."""
    from jaxalign.prefs.build import build_prefs

    cfg = config_from(args, _flags(args))
    manifest = build_prefs(args.ratings, args.out, cfg.prefs, cfg.ratings, args.overwrite)
    c = manifest["counts"]
    splits = ", ".join(f"{k} {v}" for k, v in c["pairs_by_split"].items())
    reading = manifest["reading"]
    print(f"wrote {args.out}: {c['pairs']} preference pairs ({splits})")
    print(f"  ties dropped:             {c['ties_dropped']}")
    print(
        f"  ratings rows read:        {reading['rows_read']} "
        f"({reading['rows_dropped_invalid']} invalid dropped, "
        f"{reading['raters_excluded_attention']} raters failing attention excluded)"
    )
    print(f"  manifest (hashes, counts): {manifest['output']['path'][:-6]}.manifest.json")
    return 0


def parse_weights(text: str) -> dict[str, float]:
    """'toxicity=2,helpfulness=1' -> {'toxicity': 2.0, 'helpfulness': 1.0}."""
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise JaxalignError(f"--weights: '{part}' is not dimension=number") from None
    return out


def register(groups) -> None:
    """Add the `prefs` group and its command."""
    prefs = groups.add_parser("prefs", help="build and export preference pairs")
    cmds = prefs.add_subparsers(dest="command", metavar="<command>", required=True)
    p = add_parser(cmds, "build", help="ratings -> preference records + manifest", epilog=EPILOG)
    add_ratings(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE.jsonl",
        help="preference records; FILE.manifest.json (and FILE.dropped.csv) are written beside it",
    )
    p.add_argument(
        "--group",
        action="append",
        metavar="EXPR",
        help="rater filter, e.g. gender=female or country=US,political_spectrum=conservative "
        "(repeat for several groups; default all raters)",
    )
    p.add_argument("--dimension", metavar="D", help="one dimension (single-value)")
    p.add_argument(
        "--dimensions", metavar="D1,D2,...", help="several dimensions (multi-value; see --combine)"
    )
    p.add_argument(
        "--combine",
        choices=["weighted_sum", "pareto", "concat"],
        help="how several dimensions make one preference (default: prefs.combine, weighted_sum)",
    )
    p.add_argument("--weights", metavar="D=W,...", help="weights for --combine weighted_sum")
    p.add_argument(
        "--scale",
        choices=["5", "3", "2"],
        help="rating scale to collapse to (default: prefs.scale, 5)",
    )
    p.add_argument(
        "--binary-neutral",
        dest="binary_neutral",
        choices=["drop", "low", "high"],
        help="what neutral becomes on the 2-point scale (default: prefs.binary_neutral, drop)",
    )
    p.add_argument(
        "--disagreement",
        choices=["majority", "mean", "preserve", "soft"],
        help="how raters who disagree on a pair are combined (default: prefs.disagreement, preserve)",
    )
    p.add_argument("--keep-ties", action="store_true", help="keep tied pairs with soft label 0.5")
    add_overwrite(p, "existing output files")
    add_common(p, ratings=True)
    p.set_defaults(func=cmd_prefs_build)
    from jaxalign.prefs.export import add_parser as add_prefs_export

    add_prefs_export(cmds, add_common)
