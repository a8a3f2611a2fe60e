"""The `jaxalign` command line: `jaxalign <group> <command> [options] [key=value ...]`.

The only module that reads argv. Heavy libraries are imported inside the command
functions, so `--help` stays fast. Exit codes: 0 success, 1 error (one line on stderr;
`--debug` adds the traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from pathlib import Path

from jaxalign import __version__
from jaxalign.errors import JaxalignError

EPILOG = (
    "Trailing key=value arguments override config values (e.g. prefs.scale=3); see docs/CONFIG.md."
)


def _config(args: argparse.Namespace, flags: list[str]):
    """Resolve the config: file, then flag-derived overrides, then positional key=value overrides."""
    from jaxalign.config import load_config

    return load_config(args.config, [*flags, *args.overrides])


def _common(parser: argparse.ArgumentParser, ratings: bool = False) -> None:
    """Options every command shares."""
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config file (partial; defaults fill the rest)"
    )
    if ratings:
        parser.add_argument(
            "--lenient",
            action="store_true",
            help="drop invalid rows and write a report instead of failing (ratings.strict=false)",
        )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def _ratings_flags(args) -> list[str]:
    """Overrides implied by the shared ratings options."""
    return ["ratings.strict=false"] if getattr(args, "lenient", False) else []


def cmd_simulate(args) -> int:
    """survey simulate."""
    from jaxalign.survey.simulate import write_simulation

    flags = [f"simulate.seed={args.seed}"] if args.seed is not None else []
    flags += [f"simulate.participants={args.participants}"] if args.participants is not None else []
    cfg = _config(args, flags)
    manifest = write_simulation(args.out, cfg.simulate, cfg.ratings)
    print(
        f"wrote {args.out}/ratings.parquet: {manifest['participants']} raters, {manifest['ratings']} ratings "
        f"({manifest['careless_raters']} careless); Aligniverse tables in {args.out}/aligniverse/"
    )
    return 0


def cmd_analyze(args) -> int:
    """survey analyze."""
    from jaxalign.survey.analyze import write_analysis
    from jaxalign.survey.readers import load_ratings
    from jaxalign.survey.responses import find_simulation

    cfg = _config(args, _ratings_flags(args))
    frame, report = load_ratings(args.ratings, cfg.ratings)
    out = Path(args.out)
    records = write_analysis(
        frame,
        cfg.analysis,
        out,
        {
            "raters_excluded_attention": report.raters_excluded_attention,
            "rows_dropped_invalid": report.rows_dropped,
        },
        report.problems.to_csv() if report.problems else "",
        truth=find_simulation(args.ratings),
    )
    significant = sorted(
        (r for r in records if r["significant"]), key=lambda r: -abs(r["pct_diff"])
    )
    print(
        f"{len(records)} comparisons, {len(significant)} significant; wrote {out}/effects.json, summary.md, plots"
    )
    for r in significant[:10]:
        print(
            f"  {r['dimension']:<20} {r['attribute']}={r['group']} vs {r['reference']}: {r['pct_diff']:+.1f}% "
            f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"
        )
    return 0


def cmd_validate(args) -> int:
    """survey validate."""
    from jaxalign.io import staged_files
    from jaxalign.survey.readers import load_ratings

    cfg = _config(args, _ratings_flags(args))
    frame, report = load_ratings(args.ratings, cfg.ratings)
    summary = {
        **report.summary(),
        "rows_kept": len(frame),
        "raters_kept": int(frame["rater_id"].nunique()),
    }
    if args.report and report.problems:
        with staged_files(args.report) as (tmp,):
            tmp.write_text(report.problems.to_csv())
    print(json.dumps(summary, indent=2))
    return 0


def cmd_convert(args) -> int:
    """survey convert."""
    from jaxalign.io import staged_files
    from jaxalign.survey.readers import load_ratings, write_long

    cfg = _config(args, _ratings_flags(args))
    frame, report = load_ratings(args.ratings, cfg.ratings)
    with staged_files(args.out) as (tmp,):
        write_long(frame, tmp, suffix=Path(args.out).suffix)
    print(
        f"wrote {args.out}: {len(frame)} ratings from {frame['rater_id'].nunique()} raters "
        f"({report.rows_dropped} invalid rows dropped, {report.raters_excluded_attention} raters excluded)"
    )
    return 0


def cmd_prefs_build(args) -> int:
    """prefs build."""
    from jaxalign.prefs.build import build_prefs

    flags = _ratings_flags(args)
    if args.group:
        flags.append("prefs.groups=" + json.dumps(args.group))
    if args.dimension and args.dimensions:
        raise JaxalignError("give --dimension or --dimensions, not both")
    dims = (
        [args.dimension]
        if args.dimension
        else args.dimensions.split(",")
        if args.dimensions
        else None
    )
    if dims:
        flags.append("prefs.dimensions=" + json.dumps([d.strip() for d in dims]))
    if args.weights:
        flags.append("prefs.weights=" + json.dumps(_parse_weights(args.weights)))
    for flag in ("combine", "scale", "disagreement", "binary_neutral"):
        value = getattr(args, flag)
        if value is not None:
            flags.append(f"prefs.{flag}={value}")
    if args.keep_ties:
        flags.append("prefs.keep_ties=true")
    cfg = _config(args, flags)
    manifest = build_prefs(args.ratings, args.out, cfg.prefs, cfg.ratings)
    c = manifest["counts"]
    print(
        f"wrote {args.out}: {c['pairs']} pairs {c['pairs_by_split']} ({c['ties_dropped']} ties dropped); "
        f"manifest {Path(args.out).stem}.manifest.json"
    )
    return 0


def _parse_weights(text: str) -> dict[str, float]:
    """'toxicity=2,helpfulness=1' -> {'toxicity': 2.0, 'helpfulness': 1.0}."""
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise JaxalignError(f"--weights: '{part}' is not dimension=number") from None
    return out


def cmd_model_info(args) -> int:
    """model info."""
    from jaxalign.models.loading import parameter_count, read_source, resolve

    path = resolve(args.path)
    cfg, tensors = read_source(path)
    from jaxalign.models.loading import build

    model = build(cfg, tensors, source=str(path))
    info = {"path": str(path), "parameters": parameter_count(model), **dataclasses.asdict(cfg)}
    info["rope_scaling"] = cfg.rope_scaling_dict
    print(json.dumps(info, indent=2))
    return 0


def cmd_model_export(args) -> int:
    """model export: a model path, or (--run-config) the newest checkpoint of a training run."""
    from jaxalign.models import export_hf, load_pretrained

    if args.run_config:
        import jax

        from jaxalign.config import load_config
        from jaxalign.eval.generations import restore_run
        from jaxalign.models.spec import build_model
        from jaxalign.sharding import make_mesh

        cfg = load_config(args.run_config, args.overrides)
        base, tokenizer = build_model(cfg.model, make_mesh(devices=jax.devices()[:1]))
        model, step = restore_run(cfg, base)
        print(f"restored step {step} of {cfg.train.run_dir}")
    else:
        model, tokenizer = load_pretrained(args.model, dtype=args.dtype)
    out = export_hf(model, tokenizer, args.out, dtype=args.dtype)
    print(
        f"wrote {out} (model.safetensors, config.json{', tokenizer' if tokenizer is not None else ''})"
    )
    return 0


def cmd_generate(args) -> int:
    """generate."""
    from jaxalign.data.chat import chat_ids, eos_ids, pad_id
    from jaxalign.models import load_pretrained
    from jaxalign.models.sampler import Sampler

    model, tokenizer = load_pretrained(args.model, dtype=args.dtype)
    if tokenizer is None:
        raise JaxalignError(f"{args.model}: no tokenizer files; generate needs tokenizer.json")
    ids = (
        tokenizer(args.prompt, add_special_tokens=True)["input_ids"]
        if args.raw
        else chat_ids(tokenizer, args.prompt, args.system)
    )
    stop = eos_ids(tokenizer, model.config.eos_token_id)
    sampler = Sampler(model, eos_ids=stop, pad_id=pad_id(tokenizer))
    out = sampler.generate(
        [ids],
        max_new_tokens=args.max_new_tokens,
        greedy=args.greedy,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    completion = out.completions()[0]
    text = tokenizer.decode(completion, skip_special_tokens=True)
    if args.json:
        print(
            json.dumps(
                {
                    "prompt_ids": ids,
                    "completion_ids": completion,
                    "text": text,
                    "logprobs": [round(float(x), 6) for x in out.logprobs[0][: len(completion)]],
                }
            )
        )
    else:
        print(text)
    return 0


def cmd_train(args) -> int:
    """train."""
    from jaxalign.algos.dpo import train

    cfg = _config(args, [])
    results = train(cfg, allow_changes=tuple(args.allow_change))
    shown = {
        k: round(v, 4)
        for k, v in sorted(results.items())
        if k.startswith(("base/", "eval/")) and "/" in k
    }
    print(f"trained {results['step']} steps in {cfg.train.run_dir}; " + json.dumps(shown))
    for split in ("train", "validation"):
        counts = {
            k.rsplit("/", 1)[1]: int(v)
            for k, v in results.items()
            if k.startswith(f"data/{split}/")
        }
        if counts:
            print(f"  data {split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_eval(args) -> int:
    """eval: the tuned run against its base model."""
    from jaxalign.eval.generations import generate_and_score

    cfg = _config(args, [])
    summary = generate_and_score(cfg, max_new_tokens=args.max_new_tokens, limit=args.prompts)
    results_file = Path(cfg.train.run_dir) / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    print(
        f"run {cfg.train.run_dir} (checkpoint step {summary['checkpoint_step']}), held-out pairs:"
    )
    for key in ("rewards/accuracies", "logp_accuracy", "logp_accuracy_normalized"):
        if f"eval/{key}" in results and f"base/{key}" in results:
            print(
                f"  {key:<26} base {results[f'base/{key}']:.3f}  tuned {results[f'eval/{key}']:.3f}"
            )
    for key in ("offensiveness_mean", "reply_words_mean"):
        if f"tuned/{key}" in summary:
            print(
                f"  {key:<26} base {summary[f'base/{key}']:.3f}  tuned {summary[f'tuned/{key}']:.3f} "
                f"({summary['prompts']} held-out prompts, greedy)"
            )
    print(f"replies in {Path(cfg.train.run_dir) / 'generations.json'}")
    return 0


def cmd_config_show(args) -> int:
    """config show."""
    from jaxalign.config import DPORun, config_hash, dump, project

    cfg = _config(args, [])
    print(f"# config hash: {config_hash(cfg)}; train run id: {config_hash(project(cfg, DPORun))}")
    print(dump(cfg), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="jaxalign", description="Pluralistic LLM alignment in JAX.", epilog=EPILOG
    )
    parser.add_argument("--version", action="version", version=f"jaxalign {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    groups = parser.add_subparsers(dest="group", metavar="<group>", required=True)

    survey = groups.add_parser(
        "survey", help="simulate, validate, convert and analyse survey ratings"
    )
    survey_cmds = survey.add_subparsers(dest="command", metavar="<command>", required=True)
    p = survey_cmds.add_parser(
        "simulate", help="write a calibrated synthetic survey", epilog=EPILOG
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seed", type=int, help="random seed (simulate.seed)")
    p.add_argument("--participants", type=int, help="number of raters (simulate.participants)")
    _common(p)
    p.set_defaults(func=cmd_simulate)
    p = survey_cmds.add_parser(
        "analyze", help="demographic differences in ratings, with CIs and plots", epilog=EPILOG
    )
    p.add_argument(
        "--ratings",
        required=True,
        metavar="PATH",
        help="ratings file or Aligniverse export directory",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    _common(p, ratings=True)
    p.set_defaults(func=cmd_analyze)
    p = survey_cmds.add_parser(
        "validate", help="check a ratings file and print what would be dropped", epilog=EPILOG
    )
    p.add_argument("--ratings", required=True, metavar="PATH")
    p.add_argument(
        "--report", metavar="FILE", help="write every problem to this CSV (with --lenient)"
    )
    _common(p, ratings=True)
    p.set_defaults(func=cmd_validate)
    p = survey_cmds.add_parser(
        "convert",
        help="convert ratings (e.g. an Aligniverse export) to the long format",
        epilog=EPILOG,
    )
    p.add_argument("--ratings", required=True, metavar="PATH")
    p.add_argument("--out", required=True, metavar="FILE", help=".parquet, .csv or .jsonl")
    _common(p, ratings=True)
    p.set_defaults(func=cmd_convert)

    prefs = groups.add_parser("prefs", help="build and export preference pairs")
    prefs_cmds = prefs.add_subparsers(dest="command", metavar="<command>", required=True)
    p = prefs_cmds.add_parser(
        "build", help="ratings -> preference records + manifest", epilog=EPILOG
    )
    p.add_argument("--ratings", required=True, metavar="PATH")
    p.add_argument("--out", required=True, metavar="FILE.jsonl")
    p.add_argument(
        "--group",
        action="append",
        metavar="EXPR",
        help="rater filter, e.g. gender=female or country=US,political_spectrum=conservative "
        "(repeat for several groups; default all raters)",
    )
    p.add_argument("--dimension", metavar="D", help="one dimension (single-value)")
    p.add_argument("--dimensions", metavar="D1,D2,...", help="several dimensions (multi-value)")
    p.add_argument("--combine", choices=["weighted_sum", "pareto", "concat"])
    p.add_argument("--weights", metavar="D=W,...", help="weights for --combine weighted_sum")
    p.add_argument("--scale", choices=["5", "3", "2"], help="rating scale to collapse to")
    p.add_argument(
        "--binary-neutral",
        dest="binary_neutral",
        choices=["drop", "low", "high"],
        help="what neutral becomes on the 2-point scale",
    )
    p.add_argument("--disagreement", choices=["majority", "mean", "preserve", "soft"])
    p.add_argument("--keep-ties", action="store_true", help="keep tied pairs with soft label 0.5")
    _common(p, ratings=True)
    p.set_defaults(func=cmd_prefs_build)
    from jaxalign.prefs.export import add_parser as add_prefs_export

    add_prefs_export(prefs_cmds, _common)

    model = groups.add_parser("model", help="inspect and export models")
    model_cmds = model.add_subparsers(dest="command", metavar="<command>", required=True)
    p = model_cmds.add_parser("info", help="architecture and size of a model")
    p.add_argument(
        "path", nargs="?", default="smollm2", help="HF directory, .gguf file or 'smollm2' (default)"
    )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_model_info, overrides=[])
    p = model_cmds.add_parser(
        "export", help="write a HF directory (safetensors, config, tokenizer)"
    )
    p.add_argument("--model", default="smollm2", help="HF directory, .gguf file or 'smollm2'")
    p.add_argument(
        "--run-config",
        metavar="FILE",
        help="export the newest checkpoint of the run this training config describes (instead of --model)",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for --run-config")
    p.set_defaults(func=cmd_model_export)

    p = groups.add_parser(
        "generate", help="generate text with a model (chat template unless --raw)"
    )
    p.add_argument("--model", default="smollm2", help="HF directory, .gguf file or 'smollm2'")
    p.add_argument("--prompt", required=True)
    p.add_argument("--system", help="system message for the chat template")
    p.add_argument("--raw", action="store_true", help="skip the chat template")
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--json", action="store_true", help="print token ids and log-probs as JSON")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_generate, overrides=[])

    p = groups.add_parser(
        "train", help="DPO training (resumes an existing run directory)", epilog=EPILOG
    )
    p.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="resume although config KEY (e.g. train.steps) differs from the run's checkpoint "
        "(repeatable; model.*, optim.grad_accum and optim.clip_norm never can)",
    )
    _common(p)
    p.set_defaults(func=cmd_train)

    p = groups.add_parser(
        "eval", help="compare a trained run with its base model on held-out data", epilog=EPILOG
    )
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument(
        "--prompts", type=int, default=8, help="number of held-out prompts to generate for"
    )
    _common(p)
    p.set_defaults(func=cmd_eval)

    from jaxalign.rewards.cli import register as register_reward

    register_reward(groups)

    config = groups.add_parser("config", help="inspect resolved configs")
    config_cmds = config.add_subparsers(dest="command", metavar="<command>", required=True)
    p = config_cmds.add_parser("show", help="print the resolved config and its hash", epilog=EPILOG)
    _common(p)
    p.set_defaults(func=cmd_config_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run one command, turn errors into one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for override in args.overrides if hasattr(args, "overrides") else ():
        if "=" not in override:
            parser.error(f"unexpected argument '{override}' (overrides look like key=value)")
    try:
        return args.func(args)
    except JaxalignError as err:
        if args.debug:
            traceback.print_exc()
        print(f"jaxalign: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jaxalign: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        print(
            f"jaxalign: internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
