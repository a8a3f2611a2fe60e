"""Chat rendering, rater-group statements and special-token ids: the one place for all three.

A prompt is a string (one user turn, as `prefs build` writes it) or a list of
`{"role", "content"}` messages (TRL's conversational format, multi-turn allowed); a response
is a string (one assistant turn) or a list of messages. Group conditioning adds a system
statement (`system_prompt`) or a `[group]` tag on the first user turn (`tag`). Extra template
variables (`chat_template_kwargs`, e.g. Qwen3's `enable_thinking`) pass through. Training,
evaluation and `generate` all render through here, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from jaxalign.errors import ConfigError


def group_statement(group: str) -> str:
    """Plain-language statement of a rater group expression."""
    if group in ("", "all"):
        return "Answer as preferred by raters overall."
    return f"Answer as preferred by raters with {group.replace(',', ', ').replace('=', ': ')}."


def as_messages(turns, role: str) -> list[dict]:
    """A string as one `role` turn, or a copy of a message list."""
    if isinstance(turns, str):
        return [{"role": role, "content": turns}]
    return [{"role": m["role"], "content": m["content"]} for m in turns]


def prompt_messages(prompt, conditioning: str = "none", group: str = "all") -> list[dict]:
    """The prompt's messages with the rater group stated as `conditioning` asks."""
    messages = as_messages(prompt, "user")
    if conditioning == "tag":
        first = next((m for m in messages if m["role"] == "user"), None)
        if first is not None:
            first["content"] = f"[{group}] {first['content']}"
    elif conditioning == "system_prompt":
        statement = group_statement(group)
        if messages and messages[0]["role"] == "system":
            # one system turn: many chat templates reject or drop a second one
            messages[0]["content"] = f"{statement}\n\n{messages[0]['content']}"
        else:
            messages.insert(0, {"role": "system", "content": statement})
    return messages


# apply_chat_template's own arguments: a template kwarg of these names would replace them
RESERVED_TEMPLATE_KWARGS = frozenset(
    {"conversation", "messages", "tokenize", "add_generation_prompt", "continue_final_message"}
)


def check_template_kwargs(kwargs, key: str = "chat_template_kwargs") -> dict:
    """A mapping of extra chat-template variables (e.g. Qwen3's enable_thinking) as a dict."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise ConfigError(f"{key}: expected a mapping of template variable names to values")
    clash = sorted(set(kwargs) & RESERVED_TEMPLATE_KWARGS)
    if clash:
        raise ConfigError(f"{key}.{clash[0]}: set by jaxalign itself, not a template variable")
    return dict(kwargs)


def render(
    tokenizer,
    prompt,
    response,
    conditioning: str = "none",
    group: str = "all",
    chat_template_kwargs=None,
) -> str:
    """Chat-template text of the prompt (response None: with generation prompt) or prompt + response.

    `chat_template_kwargs` are extra template variables, e.g. `{"enable_thinking": False}`.
    """
    extra = check_template_kwargs(chat_template_kwargs)
    messages = prompt_messages(prompt, conditioning, group)
    if response is None:
        return tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **extra
        )
    messages += as_messages(response, "assistant")
    return tokenizer.apply_chat_template(messages, tokenize=False, **extra)


def chat_ids(tokenizer, text, system: str | None = None, **template_kwargs) -> list[int]:
    """Token ids of a chat prompt (the tokenizer's chat template, generation prompt added)."""
    messages = ([{"role": "system", "content": system}] if system else []) + as_messages(
        text, "user"
    )
    rendered = tokenizer.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=False,
        **check_template_kwargs(template_kwargs),
    )
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


def eos_ids(tokenizer, model_eos=()) -> tuple[int, ...]:
    """Stop tokens: the tokenizer's EOS, then the model config's (deduplicated, in order)."""
    out: list[int] = []
    for value in (getattr(tokenizer, "eos_token_id", None), *model_eos):
        if value is not None and int(value) not in out:
            out.append(int(value))
    return tuple(out)


def pad_id(tokenizer) -> int:
    """Padding id: the tokenizer's pad, else its EOS, else 0."""
    for value in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if value is not None:
            return int(value)
    return 0
