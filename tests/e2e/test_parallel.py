"""Continuous batching in the real engine host (`LoadModel.n_parallel`), on the real 270M.

Several requests answer at once, each event names its request, more than N wait their turn,
Stop ends one slot only, and at temperature 0 every answer is token for token what the
single-sequence engine gives, whether it ran alone or batched with others, with its slot's prompt
cache reused or not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.core.engine.host_process import HostProcess
from app.core.engine.messages import Done, Failed, Generate, Loaded, LoadModel, Piece, Ready, Stop
from app.core.engine.prompt_cache import MIN_CHUNK
from app.core.engine.records import GenerationStats, SamplingParams
from tests.fixtures.templates import GEMMA3_TEMPLATE

pytestmark = pytest.mark.slow
# One llama.cpp thread: on a shared machine two threads' spinning barrier can collapse decoding
# (see default_threads), and these tests compare tokens, not speed.

GREEDY = SamplingParams(temperature=0.0, max_tokens=32)
PROMPTS = [
    "The capital of France is a city that " * 6,
    "Once upon a time, in a small village by the sea, " * 5,
    "The best way to learn a language is " * 7,
]


@dataclass
class Answer:
    text: str = ""
    first_piece_at: float = 0.0
    done_at: float = 0.0
    stats: GenerationStats | None = None
    pieces_after: dict[int, int] = field(default_factory=dict)  # pieces seen after id's Done


def _host(model: Path, n_parallel: int, n_ctx: int = 4096, **extra: Any) -> HostProcess:
    host = HostProcess()
    host.start()
    assert isinstance(host.wait_for(Ready, 60), Ready)
    host.send(LoadModel(str(model), n_ctx=n_ctx, n_threads=1, n_parallel=n_parallel, **extra))
    loaded = host.wait_for(Loaded, 120)
    assert isinstance(loaded, Loaded), loaded
    return host


def _collect(host: HostProcess, ids: list[int], on_event: Any = None,
             timeout: float = 240.0) -> dict[int, Answer]:
    answers = {i: Answer() for i in ids}
    done: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(ids):
        assert time.monotonic() < deadline, host.stderr_tail()
        events = host.read_events(1.0)
        assert events is not None, host.stderr_tail()
        for e in events:
            if on_event is not None:
                on_event(e)
            assert not isinstance(e, Failed), e
            if isinstance(e, Piece):
                assert e.id in answers and e.id not in done, e
                a = answers[e.id]
                a.first_piece_at = a.first_piece_at or time.monotonic()
                a.text += e.text
                for d in done:
                    answers[d].pieces_after[e.id] = answers[d].pieces_after.get(e.id, 0) + 1
            elif isinstance(e, Done):
                answers[e.id].stats = e.stats
                answers[e.id].done_at = time.monotonic()
                done.add(e.id)
    return answers


def _single_answers(model: Path, requests: list[Generate], **extra: Any) -> list[Answer]:
    host = _host(model, 1, **extra)
    try:
        out = []
        for r in requests:
            host.send(r)
            out.append(_collect(host, [r.id])[r.id])
        return out
    finally:
        host.stop()


def test_three_requests_on_two_slots_match_the_single_sequence_engine(model_270m: Path) -> None:
    host = _host(model_270m, 2)
    try:
        for i, prompt in enumerate(PROMPTS, start=1):
            host.send(Generate(i, prompt=prompt, params=GREEDY))
        answers = _collect(host, [1, 2, 3])
    finally:
        host.stop()
    first_two_done = min(answers[1].done_at, answers[2].done_at)
    # 1 and 2 answer together: each streams before the other is done.
    assert answers[1].first_piece_at < answers[2].done_at
    assert answers[2].first_piece_at < answers[1].done_at
    # 3 waits for a free slot.
    assert answers[3].first_piece_at >= first_two_done
    for a in answers.values():
        assert a.stats is not None and a.stats.completion_tokens == GREEDY.max_tokens
        assert a.stats.n_ctx == 2048  # one request's share of the 4096-token context
    # Batched with others or not, each answer is the single-sequence engine's, token for token.
    alone = _single_answers(model_270m, [Generate(i, prompt=p, params=GREEDY)
                                         for i, p in enumerate(PROMPTS, start=1)], n_ctx=2048)
    for i, single in enumerate(alone, start=1):
        got = answers[i].stats
        assert answers[i].text == single.text, i
        assert got is not None and single.stats is not None
        assert got.completion_tokens == single.stats.completion_tokens


def test_stop_one_of_two_leaves_the_other_going(model_270m: Path) -> None:
    host = _host(model_270m, 2)
    long = SamplingParams(temperature=0.0, max_tokens=150)
    seen: dict[int, int] = {1: 0, 2: 0}
    stopped = [False]

    def on_event(e: Any) -> None:
        if isinstance(e, Piece):
            seen[e.id] += 1
            if not stopped[0] and seen[1] >= 3 and seen[2] >= 3:
                host.send(Stop(1))
                stopped[0] = True

    try:
        host.send(Generate(1, prompt=PROMPTS[0], params=long))
        host.send(Generate(2, prompt=PROMPTS[1], params=long))
        answers = _collect(host, [1, 2], on_event)
    finally:
        host.stop()
    one, two = answers[1].stats, answers[2].stats
    assert one is not None and one.stopped and one.finish_reason == "stopped"
    assert one.completion_tokens < long.max_tokens
    assert two is not None and not two.stopped and two.finish_reason == "length"
    assert two.completion_tokens == long.max_tokens
    assert answers[1].pieces_after.get(2, 0) > 0  # 2 went on streaming after 1 was done


def test_cached_equals_fresh_in_parallel_mode(model_270m: Path) -> None:
    """Two conversations at once on two slots (each reusing its slot's cache, past the 512-token
    sliding window) answer as a fresh single-sequence context does."""
    filler = "Tell me more about the history of the city, its rivers and bridges. " * 6
    params = SamplingParams(temperature=0.0, max_tokens=24)
    parallel = _host(model_270m, 2, chat_template=GEMMA3_TEMPLATE)
    fresh = _host(model_270m, 1, n_ctx=2048, chat_template=GEMMA3_TEMPLATE)
    chats: list[list[dict[str, Any]]] = [[], []]
    stats: list[list[GenerationStats]] = [[], []]
    try:
        for turn in range(6):
            ids = [100 + 2 * turn, 101 + 2 * turn]
            for c, req_id in enumerate(ids):
                chats[c].append({"role": "user", "content": f"Chat {c}, turn {turn}. {filler}"})
                parallel.send(Generate(req_id, messages=list(chats[c]), params=params))
            answers = _collect(parallel, ids)
            for c, req_id in enumerate(ids):
                fresh.send(Generate(req_id, messages=list(chats[c]), params=params, cache=False))
                alone = _collect(fresh, [req_id])[req_id]
                assert answers[req_id].text == alone.text, (c, turn)
                got = answers[req_id].stats
                assert got is not None
                stats[c].append(got)
                chats[c].append({"role": "assistant", "content": answers[req_id].text})
    finally:
        parallel.stop()
        fresh.stop()
    for c in (0, 1):
        assert stats[c][-1].prompt_tokens > 700  # past the sliding window
        for prev, cur in zip(stats[c], stats[c][1:], strict=False):
            # Each conversation found its own slot again: only the new turn was decoded.
            assert cur.cached_tokens >= prev.prompt_tokens - MIN_CHUNK, (c, prev, cur)


def test_serve_parallel_with_the_official_openai_client(model_270m: Path, tmp_path: Path) -> None:
    """`main.py serve --parallel 2`: three streaming clients from threads all complete, two answer
    at once and the third waits its turn; answers equal the single-sequence engine's."""
    import threading

    import openai

    from tests.fixtures.openai_servers import free_port, gemma_serve, running

    port = free_port()
    cmd = gemma_serve(model_270m, port, "--threads", "1", "--ctx", "2048", "--parallel", "2")
    spans: dict[int, tuple[float, float, str]] = {}

    def ask(i: int, client: openai.OpenAI) -> None:
        t_first, text = 0.0, ""
        stream = client.completions.create(model=model_270m.name, prompt=PROMPTS[i], max_tokens=32,
                                           temperature=0, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].text:
                t_first = t_first or time.monotonic()
                text += chunk.choices[0].text
        spans[i] = (t_first, time.monotonic(), text)

    with running(cmd, "/health", port, tmp_path / "serve.log", {"GEMMA_DESKTOP_HOME": str(tmp_path)}), \
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0,
                          timeout=120) as client:
        threads = [threading.Thread(target=ask, args=(i, client)) for i in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.05)  # arrival order 0, 1, 2
        for t in threads:
            t.join()
    assert sorted(spans) == [0, 1, 2]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # 0 and 1 at once
    assert spans[2][0] >= min(spans[0][1], spans[1][1]) - 0.05  # 2 after one of them ended
    alone = _single_answers(model_270m, [Generate(i, prompt=p, params=GREEDY)
                                         for i, p in enumerate(PROMPTS)], n_ctx=1024)
    for i, single in enumerate(alone):
        assert spans[i][2] == single.text, i
