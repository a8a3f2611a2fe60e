"""Numerical kernels shared by training and evaluation."""

from jaxalign.ops.logprobs import naive_token_logprobs, token_logprobs

__all__ = ["naive_token_logprobs", "token_logprobs"]
