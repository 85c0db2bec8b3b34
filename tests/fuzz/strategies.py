"""Inputs a hostile peer could send, shared by the fuzz tests: JSON of any shape (with the field names the
gateway looks for, so cases reach past the first check), text with every code point (lone surrogates included:
aiohttp keeps header bytes that are not UTF-8 as surrogates), and byte-level mutations of valid input.

Hypothesis spends about a millisecond of bookkeeping on each example here, far more than a parser takes: so
each example is a batch of drawn inputs, and byte inputs also yield seeded mutations (a mutation fuzzer's
cheap cases; the example's seed makes them reproducible and shrinkable with it). CASES counts the inputs each
test fed its parser; the total is printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("GATEWAY_FUZZ_SCALE", "1"))
CASES: Counter[str] = Counter()


def budget(examples: int) -> settings:
    """This test's number of examples (scaled by GATEWAY_FUZZ_SCALE)."""
    return settings(max_examples=max(1, round(examples * SCALE)))


def batch(inputs: st.SearchStrategy, size: int) -> st.SearchStrategy[list]:
    return st.lists(inputs, min_size=size, max_size=size)


def with_mutations(inputs: list[bytes], seed: int, count: int) -> list[bytes]:
    """Each input, then `count` copies of it with a few bytes replaced, inserted or cut off."""
    rng = random.Random(seed)
    cases = []
    for data in inputs:
        cases.append(data)
        for _ in range(count):
            mutant = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                at = rng.randint(0, len(mutant))
                if rng.random() < 0.2:
                    del mutant[at:]
                else:
                    mutant[at:at + rng.randint(0, 1)] = rng.randbytes(rng.randint(1, 3))
            cases.append(bytes(mutant))
    return cases


seeds = st.integers(0, 2**32 - 1)


def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` four times in five (one_of picks its branches alike): most cases get past the first check."""
    return st.integers(0, 4).flatmap(lambda pick: usual if pick else odd)


def feed(name: str, cases: list, check: Callable[[Any], None]) -> None:
    """`check` each case (it catches the documented errors itself); anything else fails, naming the input."""
    CASES[name] += len(cases)
    for case in cases:
        try:
            check(case)
        except Exception as exc:
            raise AssertionError(f"{name} failed on {case!r:.3000}") from exc


any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates too


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2, max_value=2**70)
               | st.floats() | st.text(max_size=20))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys | st.text(max_size=6),
                                                                                              inner, max_size=5),
                        max_leaves=16)


def json_bytes(value: object, ascii_only: bool) -> bytes:
    """NaN, Infinity and lone surrogates included: not JSON, not UTF-8, as a peer may send them."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def nested(max_depth: int = 5000) -> st.SearchStrategy[bytes]:
    """JSON nested deeper than any decoder goes, closed or not, inside an object or alone."""
    return st.builds(
        lambda depth, opener, closed, prefix: prefix + opener * depth + (_closer(opener) * depth if closed else b""),
        st.integers(1, max_depth), st.sampled_from([b"[", b'{"a":', b'[{"b":']), st.booleans(),
        st.sampled_from([b"", b'{"command":"connect","callId":', b'{"event":"ice","callid":"c","custom":']),
    )


def _closer(opener: bytes) -> bytes:
    return {b"[": b"]", b'{"a":': b"}", b'[{"b":': b"}]"}[opener]
