"""Helpers for scripts/bench_gpu.sh: section status lines, section digests, the smoke's inputs.

    python scripts/bench_gpu_util.py status DOC SECTION TITLE TEXT   # "Pending: TEXT" under the title
    python scripts/bench_gpu_util.py append DOC SECTION TEXT         # a paragraph at the section's end
    python scripts/bench_gpu_util.py digest DOC SECTION              # sha256 of the section ("missing")
    python scripts/bench_gpu_util.py show DOC SECTION                # the section's text
    python scripts/bench_gpu_util.py smoke-inputs DIR TORCH_REF      # tiny-shape torch ref + tokenizer

Only the standard library at import (the smoke inputs import tokenizers/transformers), so the
notes cost a fraction of a second each, also where jax or torch are broken.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import SHAPES, read_section, write_section

STATUS = "Pending:"


def set_status(doc: Path, name: str, title: str, text: str) -> None:
    """Put a 'Pending: text' paragraph under the section's title, replacing an earlier one; the
    figures below it stay (a section not there yet is created as '## title: pending')."""
    body = read_section(doc, name)
    lines = (body if body is not None else f"## {title}: pending").splitlines()
    head, rest = (lines[:1], lines[1:]) if lines and lines[0].startswith("#") else ([], lines)
    rest = _drop_leading_blanks(rest)
    if rest and rest[0].startswith(STATUS):
        while rest and rest[0].strip():
            rest = rest[1:]
        rest = _drop_leading_blanks(rest)
    parts = [*head, "", f"{STATUS} {text}"] + (["", *rest] if rest else [])
    write_section(doc, name, "\n".join(parts).lstrip("\n"))


def _drop_leading_blanks(lines: list[str]) -> list[str]:
    """`lines` without its leading blank lines."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    return lines


def append(doc: Path, name: str, text: str) -> None:
    """Add a paragraph at the end of a section (created if missing)."""
    body = read_section(doc, name) or ""
    write_section(doc, name, f"{body.rstrip()}\n\n{text}".lstrip("\n"))


def digest(doc: Path, name: str) -> str:
    """sha256 of the section's text, or 'missing'."""
    body = read_section(doc, name)
    return "missing" if body is None else hashlib.sha256(body.encode()).hexdigest()


def smoke_inputs(out: Path, torch_ref: Path) -> None:
    """A copy of the torch DPO reference that knows the 'tiny' shape, and a tiny tokenizer with a
    chat template (for bench_grpo's --random-like), under `out`."""
    if not torch_ref.is_file():
        raise SystemExit(f"{torch_ref}: no torch DPO reference (set SMOKE_TORCH_REF)")
    out.mkdir(parents=True, exist_ok=True)
    text = torch_ref.read_text()
    anchor = "SHAPES = {\n"
    if anchor not in text:
        raise SystemExit(f"{torch_ref}: no 'SHAPES = {{' line to add the tiny shape to")
    tiny = f'    "tiny": {SHAPES["tiny"]},  # bench_gpu.sh smoke run\n'
    (out / "torch_dpo_reference.py").write_text(text.replace(anchor, anchor + tiny, 1))
    tiny_tokenizer(out / "tokenizer")


def tiny_tokenizer(out: Path) -> None:
    """A byte-level BPE tokenizer of ~300 tokens with a ChatML template, saved as an HF dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    words = "write a long detailed story about the sea old clock mountain village robot winter"
    tok.train_from_iterator([words] * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(out)


def main(argv=None) -> None:
    """Dispatch the sub-command."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd, args in {
        "status": ("doc", "section", "title", "text"),
        "append": ("doc", "section", "text"),
        "digest": ("doc", "section"),
        "show": ("doc", "section"),
        "smoke-inputs": ("out", "torch_ref"),
    }.items():
        p = sub.add_parser(cmd)
        for arg in args:
            p.add_argument(arg)
    a = ap.parse_args(argv)
    if a.cmd == "status":
        set_status(Path(a.doc), a.section, a.title, a.text)
    elif a.cmd == "append":
        append(Path(a.doc), a.section, a.text)
    elif a.cmd == "digest":
        print(digest(Path(a.doc), a.section))
    elif a.cmd == "show":
        print(read_section(Path(a.doc), a.section) or "")
    else:
        smoke_inputs(Path(a.out), Path(a.torch_ref))


if __name__ == "__main__":
    main()
