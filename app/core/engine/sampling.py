"""llama.cpp's sampler chain built from the app's sampling settings."""

from __future__ import annotations

from typing import Any

import llama_cpp as lc

from app.core.engine.records import EngineError, SamplingParams


def make_sampler(vocab: Any, params: SamplingParams) -> Any:
    """llama.cpp's sampler chain for these settings (the caller frees it)."""
    chain_params = lc.llama_sampler_chain_default_params()
    chain = lc.llama_sampler_chain_init(chain_params)

    def add(sampler: Any) -> None:
        lc.llama_sampler_chain_add(chain, sampler)

    if params.repeat_penalty and params.repeat_penalty != 1.0:
        add(lc.llama_sampler_init_penalties(64, params.repeat_penalty, 0.0, 0.0))
    if params.grammar:
        grammar = lc.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
        if not grammar:
            lc.llama_sampler_free(chain)
            raise EngineError("input", "The grammar could not be parsed.")
        add(grammar)
    if params.temperature <= 0.0:
        add(lc.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(lc.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(lc.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0.0:
        add(lc.llama_sampler_init_min_p(params.min_p, 1))
    add(lc.llama_sampler_init_temp(params.temperature))
    seed = params.seed if params.seed is not None else lc.LLAMA_DEFAULT_SEED
    add(lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain
