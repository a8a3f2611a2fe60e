"""`jaxalign model info|export` and `jaxalign generate`."""

from __future__ import annotations

import json
from pathlib import Path

from jaxalign.cli.common import add_debug, add_overwrite, add_parser, float_in, int_at_least
from jaxalign.errors import DataError, JaxalignError

MODEL_HELP = (
    "HF directory, .gguf file or 'smollm2' (the bundled SmolLM2-135M-Instruct, a 4-bit Q4_1 GGUF)"
)


def cmd_model_info(args) -> int:
    """model info: read from the file's header and config only (no weights decoded)."""
    from jaxalign.models.loading import describe, resolve

    info = describe(resolve(args.path))
    print(json.dumps(info, indent=2) if args.json else _human(info))
    return 0


def _human(info: dict) -> str:
    """A short readable description of a model."""
    lines = [
        f"{info['path']}",
        f"  format:      {info['format']}",
        f"  parameters:  {info['parameters']:,} ({info['parameters'] / 1e6:.1f} M)",
        f"  family:      {info['family']}, {info['num_layers']} layers, hidden {info['hidden_size']}, "
        f"{info['num_heads']} heads ({info['num_kv_heads']} key/value), vocab {info['vocab_size']}",
        f"  context:     {info['max_position_embeddings']} tokens",
        "  (--json prints every field)",
    ]
    return "\n".join(lines)


def _export_inputs(args) -> list[str]:
    """Paths `model export` reads (its --out may not be one of them)."""
    if args.run_config:
        from jaxalign.config import load_config

        return [args.run_config, load_config(args.run_config, args.overrides).train.run_dir]
    return [args.model] if args.model != "smollm2" else []


def _refuse_inside_inputs(shown: str, out: Path, inputs: list[str]) -> None:
    """An export never goes inside the run or model directory it reads (docs/SAFETY.md)."""
    for item in inputs:
        source = Path(item).resolve()
        if out.is_relative_to(source):
            raise DataError(
                f"{shown}: is inside {item}, which this export reads; write it elsewhere"
            )


def cmd_model_export(args) -> int:
    """model export: a model path, or (--run-config) the newest checkpoint of a training run."""
    from jaxalign.io import check_output

    inputs = _export_inputs(args)
    out = check_output(args.out, "model export", inputs=inputs, overwrite=args.overwrite)
    _refuse_inside_inputs(args.out, out, inputs)
    cfg = _run_config(args)
    from jaxalign.models import export_hf, load_pretrained
    from jaxalign.progress import bar

    with bar(total=2, desc="export", unit="step", disable=None) as steps:
        if cfg is not None:
            model, tokenizer = _restore_run(cfg)
        else:
            model, tokenizer = load_pretrained(args.model, dtype=args.dtype)
        steps.update()
        if args.adapter:
            from jaxalign.models.lora import export_adapter

            out = export_adapter(
                model, cfg.lora, cfg.model.path, args.out, args.dtype, args.overwrite
            )
            files = "adapter_model.safetensors, adapter_config.json"
        else:
            if args.merge_lora:
                from jaxalign.models.lora import merge_lora

                merge_lora(model)
            out = export_hf(model, tokenizer, args.out, dtype=args.dtype, overwrite=args.overwrite)
            files = "model.safetensors, config.json" + (
                ", tokenizer" if tokenizer is not None else ""
            )
        steps.update()
    print(f"wrote {out} ({files})")
    return 0


def _run_config(args):
    """The --run-config config (None without one), with --merge-lora/--adapter checked against it."""
    flag = "--merge-lora" if args.merge_lora else "--adapter" if args.adapter else None
    if not args.run_config:
        if flag:
            raise JaxalignError(f"{flag} exports a LoRA training run: give --run-config FILE")
        if args.overrides:  # else they would be ignored and --model exported silently
            raise JaxalignError(
                f"{args.overrides[0]}: key=value overrides apply to --run-config; give one"
            )
        return None
    if args.model != "smollm2":
        raise JaxalignError(
            f"--model {args.model} and --run-config {args.run_config}: give one of them"
        )
    from jaxalign.config import load_config

    cfg = load_config(args.run_config, args.overrides)
    if cfg.lora.enabled and flag is None:
        raise JaxalignError(
            f"{cfg.train.run_dir}: a LoRA run (lora.rank={cfg.lora.rank}) checkpoints adapters "
            "only; give --merge-lora (a merged HF directory) or --adapter (PEFT adapter files)"
        )
    if flag and not cfg.lora.enabled:
        raise JaxalignError(f"{flag}: {cfg.train.run_dir} is not a LoRA run (lora.rank is 0)")
    return cfg


def _restore_run(cfg):
    """(model, tokenizer) at the newest checkpoint of the run `cfg` describes."""
    from jaxalign.train.restore import require_checkpoint

    require_checkpoint(cfg.train.run_dir)
    import jax

    from jaxalign.eval.generations import restore_run
    from jaxalign.models.spec import build_model
    from jaxalign.sharding import make_mesh

    base, tokenizer = build_model(cfg.model, make_mesh(devices=jax.devices()[:1]))
    model, step = restore_run(cfg, base)
    print(f"restored step {step} of {cfg.train.run_dir}")
    return model, tokenizer


def check_length(model_path: str, context: int, prompt_len: int, max_new_tokens: int) -> None:
    """Refuse a prompt plus new tokens longer than the model's context (memory, not garbage)."""
    if prompt_len + max_new_tokens > context:
        raise JaxalignError(
            f"--max-new-tokens {max_new_tokens}: with the {prompt_len}-token prompt this exceeds "
            f"the {context}-token context of {model_path} (max_position_embeddings)"
        )


def cmd_generate(args) -> int:
    """generate."""
    from jaxalign.data.chat import chat_ids, eos_ids, pad_id
    from jaxalign.models import load_pretrained
    from jaxalign.models.sampler import Sampler
    from jaxalign.progress import bar

    with bar(total=2, desc="generate", unit="step", disable=None) as steps:
        model, tokenizer = load_pretrained(args.model, dtype=args.dtype)
        if tokenizer is None:
            raise JaxalignError(f"{args.model}: no tokenizer files; generate needs tokenizer.json")
        ids = (
            tokenizer(args.prompt, add_special_tokens=True)["input_ids"]
            if args.raw
            else chat_ids(tokenizer, args.prompt, args.system)
        )
        check_length(
            args.model, model.config.max_position_embeddings, len(ids), args.max_new_tokens
        )
        steps.update()
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
        steps.update()
    completion = out.completions()[0]
    text = tokenizer.decode(completion, skip_special_tokens=True)
    if args.json:
        logprobs = [round(float(x), 6) for x in out.logprobs[0][: len(completion)]]
        payload = {"prompt_ids": ids, "completion_ids": completion, "text": text}
        print(json.dumps({**payload, "logprobs": logprobs}))
    else:
        print(text)
    return 0


def register(groups) -> None:
    """Add `model info|export` and `generate`."""
    model = groups.add_parser("model", help="inspect and export models")
    cmds = model.add_subparsers(dest="command", metavar="<command>", required=True)
    p = add_parser(cmds, "info", help="architecture and size of a model (weights are not decoded)")
    p.add_argument("path", nargs="?", default="smollm2", help=MODEL_HELP)
    p.add_argument("--json", action="store_true", help="print every field as JSON")
    add_debug(p)
    p.set_defaults(func=cmd_model_info, overrides=[])
    p = add_parser(cmds, "export", help="write a HF directory (safetensors, config, tokenizer)")
    p.add_argument("--model", default="smollm2", help=MODEL_HELP)
    p.add_argument(
        "--run-config",
        metavar="FILE",
        help="export the newest checkpoint of the run this training config describes "
        "(instead of --model)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (a new one)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="weight dtype")
    lora = p.add_mutually_exclusive_group()
    lora.add_argument(
        "--merge-lora",
        action="store_true",
        help="a LoRA run (--run-config): fold the adapters into the weights, write a HF directory",
    )
    lora.add_argument(
        "--adapter",
        action="store_true",
        help="a LoRA run (--run-config): write only adapter_model.safetensors + "
        "adapter_config.json, which PEFT loads onto the HF base model",
    )
    add_overwrite(p, "a non-empty --out directory")
    add_debug(p)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for --run-config")
    p.set_defaults(func=cmd_model_export)
    _register_generate(groups)


def _register_generate(groups) -> None:
    """Add `generate`."""
    p = add_parser(
        groups, "generate", help="generate text with a model (chat template unless --raw)"
    )
    p.add_argument("--model", default="smollm2", help=MODEL_HELP)
    p.add_argument("--prompt", required=True, help="the user message (or raw text with --raw)")
    p.add_argument("--system", help="system message for the chat template")
    p.add_argument("--raw", action="store_true", help="skip the chat template")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument(
        "--max-new-tokens",
        type=int_at_least(1),
        default=64,
        help="tokens to generate at most (prompt + these must fit the model's context)",
    )
    p.add_argument(
        "--temperature",
        type=float_in(0, 100, low_open=True),
        default=1.0,
        help="sampling temperature",
    )
    p.add_argument("--top-k", type=int_at_least(0), default=0, help="keep the k likeliest (0: all)")
    p.add_argument(
        "--top-p", type=float_in(0, 1, low_open=True), default=1.0, help="nucleus probability mass"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="compute dtype")
    p.add_argument("--json", action="store_true", help="print token ids and log-probs as JSON")
    add_debug(p)
    p.set_defaults(func=cmd_generate, overrides=[])
