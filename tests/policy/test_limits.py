"""Result limits: what fits is shown, the rest is paged, and the pages add up to the original."""

from __future__ import annotations

import json
import time

import mcp_types as types
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiver import tokens
from quiver.policy.limits import (
    CapOutcome,
    Continuations,
    PageOutOfRangeError,
    UnknownContinuationError,
    cap_result,
)

PRINCIPAL = "alice"


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def image(size: int) -> types.ImageContent:
    return types.ImageContent(type="image", data="A" * size, mime_type="image/png")


def result(*blocks: types.ContentBlock, structured: object = None) -> types.CallToolResult:
    return types.CallToolResult(content=list(blocks), structured_content=structured)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def note(page: types.CallToolResult) -> str:
    last = page.content[-1]
    assert isinstance(last, types.TextContent)
    assert last.text.startswith("[")
    assert last.text.endswith("]")
    return last.text


def body(page: types.CallToolResult) -> list[types.ContentBlock]:
    """A page's blocks without its closing note, if it has one."""
    last = page.content[-1] if page.content else None
    if isinstance(last, types.TextContent) and last.text.startswith(("[output truncated: ", "[page ")):
        return list(page.content[:-1])
    return list(page.content)


def pages(outcome: CapOutcome, store: Continuations, principal: str | None = PRINCIPAL) -> list[types.CallToolResult]:
    """The capped result and every page after it, read in order until the last."""
    read = [outcome.result]
    if outcome.handle is None:
        return read
    number = 2
    while True:
        page = store.page(outcome.handle, number, principal=principal)
        read.append(page)
        if "last page" in note(page):
            return read
        assert f'"page": {number + 1}' in note(page)
        number += 1


def texts(blocks: list[types.ContentBlock]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
            parts.append(block.resource.text)
    return "".join(parts)


def reassembled(outcome: CapOutcome, store: Continuations) -> str:
    return "".join(texts(body(page)) for page in pages(outcome, store))


def page_bytes(page: types.CallToolResult) -> int:
    size = 0
    for block in body(page):
        if isinstance(block, types.ImageContent | types.AudioContent):
            size += len(block.data)
        else:
            size += len(texts([block]).encode())
    return size


# -- nothing to cut


def test_no_limits_leave_the_result_alone() -> None:
    original = result(text("x" * 10_000))
    outcome = cap_result(original, max_bytes=None, max_tokens=None, store=Continuations())
    assert outcome.result is original
    assert not outcome.truncated


def test_a_result_within_the_limits_is_unchanged() -> None:
    original = result(text("hello"), image(100), structured={"a": 1})
    outcome = cap_result(original, max_bytes=1000, max_tokens=500, store=Continuations())
    assert outcome.result is original
    assert not outcome.truncated


# -- bytes


def test_byte_cap_cuts_and_says_how_to_read_on() -> None:
    store = Continuations()
    original = "0123456789" * 1_000
    outcome = cap_result(result(text(original)), max_bytes=4_000, max_tokens=None, store=store, principal=PRINCIPAL)
    assert outcome.truncated
    assert (outcome.shown_bytes, outcome.total_bytes, outcome.kept_bytes) == (4_000, 10_000, 6_000)
    shown, _ = outcome.result.content
    assert isinstance(shown, types.TextContent)
    assert shown.text == original[:4_000]
    assert outcome.handle is not None
    assert outcome.handle.startswith("c_")
    assert note(outcome.result) == (
        "[output truncated: 4,000 of 10,000 bytes shown (limit: 4,000 bytes). The rest: "
        f'call_tool(id="quiver.continue", arguments={{"handle": "{outcome.handle}", "page": 2}}).]'
    )
    read = pages(outcome, store)
    assert len(read) == 3
    assert note(read[1]).startswith("[page 2: bytes 4,001-8,000 of 10,000. Next: call_tool(")
    assert note(read[2]) == "[page 3: bytes 8,001-10,000 of 10,000. This is the last page.]"
    assert reassembled(outcome, store) == original


def test_byte_cap_cuts_between_characters() -> None:
    store = Continuations()
    original = "aé€😀" * 500  # 1, 2, 3 and 4 bytes
    outcome = cap_result(result(text(original)), max_bytes=1_001, max_tokens=None, store=store, principal=PRINCIPAL)
    read = pages(outcome, store)
    assert all(page_bytes(page) <= 1_001 for page in read)
    assert all(page_bytes(page) >= 1_001 - 3 for page in read[:-1])
    assert reassembled(outcome, store) == original


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=5), st.integers(min_value=4, max_value=50))
def test_pages_always_add_up_to_the_original(parts: list[str], cap: int) -> None:
    store = Continuations()
    outcome = cap_result(result(*map(text, parts)), max_bytes=cap, max_tokens=None, store=store, principal=PRINCIPAL)
    read = pages(outcome, store)
    assert reassembled(outcome, store) == "".join(parts)
    assert all(page_bytes(page) <= cap for page in read)


# -- tokens


def test_token_cap_cuts_with_the_encoding() -> None:
    store = Continuations()
    original = " ".join(f"word{n} ünïcode 😀" for n in range(3_000))
    outcome = cap_result(result(text(original)), max_bytes=None, max_tokens=500, store=store, principal=PRINCIPAL)
    assert outcome.shown_tokens is not None
    assert 490 <= outcome.shown_tokens <= 500
    assert "(limit: 500 tokens)" in note(outcome.result)
    read = pages(outcome, store)
    assert all(tokens.count(texts(body(page))) <= 500 for page in read)
    assert reassembled(outcome, store) == original


def test_byte_and_token_caps_together() -> None:
    store = Continuations()
    original = "tokenizer " * 2_000
    outcome = cap_result(result(text(original)), max_bytes=3_000, max_tokens=200, store=store, principal=PRINCIPAL)
    assert "(limit: 3,000 bytes and 200 tokens)" in note(outcome.result)
    for page in pages(outcome, store):
        assert page_bytes(page) <= 3_000
        assert tokens.count(texts(body(page))) <= 200
    assert reassembled(outcome, store) == original


def test_limits_below_one_character_still_make_progress() -> None:
    store = Continuations()
    outcome = cap_result(result(text("é😀x")), max_bytes=1, max_tokens=None, store=store, principal=PRINCIPAL)
    assert len(pages(outcome, store)) == 3
    assert reassembled(outcome, store) == "é😀x"
    outcome = cap_result(result(text("😀😀")), max_bytes=None, max_tokens=1, store=store, principal=PRINCIPAL)
    assert reassembled(outcome, store) == "😀😀"


def test_megabytes_are_capped_without_tokenizing_all_of_them() -> None:
    store = Continuations()
    original = "the quick brown fox jumps over the lazy dog. " * 100_000
    cap_result(result(text("load the encoding " * 10)), max_bytes=None, max_tokens=5, store=store)
    started = time.perf_counter()
    outcome = cap_result(result(text(original)), max_bytes=None, max_tokens=2_000, store=store, principal=PRINCIPAL)
    # A page's worth of tokenizing takes a few ms; all 4.5 MB would take over 100.
    assert time.perf_counter() - started < 0.1
    assert outcome.handle is not None
    assert outcome.total_bytes == len(original)
    page = store.page(outcome.handle, 40, principal=PRINCIPAL)  # pages before it are cut on the way
    assert "Next:" in note(page)


# -- blocks


def test_whole_blocks_are_kept_while_they_fit() -> None:
    store = Continuations()
    blocks = [text("a" * 30), text("b" * 30), text("c" * 30)]
    outcome = cap_result(result(*blocks), max_bytes=70, max_tokens=None, store=store, principal=PRINCIPAL)
    first, second, cut = body(outcome.result)
    assert first is blocks[0]
    assert second is blocks[1]
    assert cut == text("c" * 10)
    assert body(store.page(outcome.handle or "", 2, principal=PRINCIPAL)) == [text("c" * 20)]


def test_embedded_text_resources_are_cut_like_text() -> None:
    store = Continuations()
    resource = types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri="file:///log", mime_type="text/plain", text="L" * 500)
    )
    outcome = cap_result(result(resource), max_bytes=200, max_tokens=None, store=store, principal=PRINCIPAL)
    (cut,) = body(outcome.result)
    assert isinstance(cut, types.EmbeddedResource)
    assert isinstance(cut.resource, types.TextResourceContents)
    assert (cut.resource.uri, cut.resource.mime_type, cut.resource.text) == ("file:///log", "text/plain", "L" * 200)
    assert reassembled(outcome, store) == "L" * 500


def test_binary_blocks_move_whole_to_the_next_page() -> None:
    store = Continuations()
    picture = image(600)
    outcome = cap_result(result(text("t" * 500), picture), max_bytes=1_000, max_tokens=None, store=store)
    assert [type(block) for block in body(outcome.result)] == [types.TextContent]
    assert body(store.page(outcome.handle or "", 2)) == [picture]


def test_a_binary_block_larger_than_a_page_is_left_out_and_said_so() -> None:
    store = Continuations()
    outcome = cap_result(
        result(text("before"), image(5_000), text("after")), max_bytes=1_000, max_tokens=None, store=store
    )
    assert texts(body(outcome.result)) == "beforeafter"
    assert "An image (image/png, 5,000 bytes) exceeds the limit and was left out." in note(outcome.result)
    assert outcome.omitted
    assert outcome.lost_bytes == 5_000
    assert outcome.handle is None
    assert "The rest" not in note(outcome.result)


def test_binary_blocks_count_no_tokens() -> None:
    original = result(text("hi"), image(50_000))
    outcome = cap_result(original, max_bytes=None, max_tokens=10, store=Continuations())
    assert outcome.result is original


# -- structured content


def test_structured_content_that_fits_is_kept_and_counted_first() -> None:
    store = Continuations()
    data = {"rows": list(range(100))}
    size = len(json.dumps(data, separators=(",", ":")))
    outcome = cap_result(result(text("x" * 1_000), structured=data), max_bytes=size + 100, max_tokens=None, store=store)
    assert outcome.result.structured_content == data
    assert texts(body(outcome.result)) == "x" * 100
    assert outcome.shown_bytes == size + 100
    assert not outcome.structured_dropped


def test_structured_content_too_large_is_dropped_when_the_text_holds_it() -> None:
    store = Continuations()
    data = {"rows": [{"id": n, "name": f"row {n}"} for n in range(200)]}
    mirror = json.dumps(data, indent=2)
    outcome = cap_result(
        result(text(mirror), structured=data), max_bytes=2_000, max_tokens=None, store=store, principal=PRINCIPAL
    )
    assert outcome.result.structured_content is None
    assert outcome.structured_dropped
    assert "exceeds the limit; the same data is in the text." in note(outcome.result)
    assert reassembled(outcome, store) == mirror


def test_structured_content_too_large_is_paged_as_json_otherwise() -> None:
    store = Continuations()
    data = {"rows": [{"id": n, "name": f"row {n}"} for n in range(200)]}
    outcome = cap_result(
        result(text("summary"), structured=data), max_bytes=2_000, max_tokens=None, store=store, principal=PRINCIPAL
    )
    assert outcome.result.structured_content is None
    assert "its JSON follows the text." in note(outcome.result)
    assert reassembled(outcome, store) == "summary" + json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def test_other_fields_survive_capping() -> None:
    original = types.CallToolResult(content=[text("e" * 100)], is_error=True, _meta={"trace": "t-1"})
    outcome = cap_result(original, max_bytes=10, max_tokens=None, store=Continuations())
    assert outcome.result.is_error is True
    assert outcome.result.meta == {"trace": "t-1"}
    assert original.content == [text("e" * 100)]


# -- the store


def capped(store: Continuations, principal: str | None = PRINCIPAL, size: int = 3_000) -> str:
    outcome = cap_result(result(text("z" * size)), max_bytes=1_000, max_tokens=None, store=store, principal=principal)
    assert outcome.handle is not None
    return outcome.handle


def test_handles_are_bound_to_their_principal() -> None:
    store = Continuations()
    handle = capped(store)
    with pytest.raises(UnknownContinuationError) as caught:
        store.page(handle, 2, principal="mallory")
    assert caught.value.code == "continuation_unknown"
    assert handle in caught.value.message
    assert caught.value.hint
    with pytest.raises(UnknownContinuationError):
        store.page(handle, 2, principal=None)
    assert body(store.page(handle, 2, principal=PRINCIPAL))


def test_handles_are_unguessable() -> None:
    store = Continuations()
    handles = {capped(store) for _ in range(20)}
    assert len(handles) == 20
    assert all(len(handle) >= 20 for handle in handles)
    with pytest.raises(UnknownContinuationError):
        store.page("c_" + "A" * 22, 2, principal=PRINCIPAL)


def test_pages_can_be_read_again_and_out_of_order() -> None:
    store = Continuations()
    handle = capped(store, size=5_000)
    fourth = store.page(handle, 4, principal=PRINCIPAL)
    assert store.page(handle, 4, principal=PRINCIPAL) == fourth
    assert note(store.page(handle, 5, principal=PRINCIPAL)).endswith("This is the last page.]")


def test_pages_out_of_range_say_which_exist() -> None:
    store = Continuations()
    handle = capped(store)
    with pytest.raises(PageOutOfRangeError, match="has no page 9: its pages run from 2 to 3"):
        store.page(handle, 9, principal=PRINCIPAL)
    with pytest.raises(PageOutOfRangeError, match="has no page 1"):
        store.page(handle, 1, principal=PRINCIPAL)


def test_continuations_expire_after_their_last_read() -> None:
    clock = Clock()
    store = Continuations(ttl=60, clock=clock)
    handle = capped(store, size=5_000)
    clock.now += 50
    store.page(handle, 2, principal=PRINCIPAL)
    clock.now += 50  # 100 s after creation, 50 s after the read
    store.page(handle, 3, principal=PRINCIPAL)
    clock.now += 61
    with pytest.raises(UnknownContinuationError, match="unknown or expired") as caught:
        store.page(handle, 4, principal=PRINCIPAL)
    assert "1 minutes" in (caught.value.hint or "")
    assert len(store) == 0
    assert store.total_bytes == 0


def test_the_least_recently_read_go_first_when_full() -> None:
    store = Continuations(max_entries=2)
    first, second = capped(store), capped(store)
    store.page(first, 2, principal=PRINCIPAL)
    third = capped(store)
    assert len(store) == 2
    with pytest.raises(UnknownContinuationError):
        store.page(second, 2, principal=PRINCIPAL)
    store.page(first, 2, principal=PRINCIPAL)
    store.page(third, 2, principal=PRINCIPAL)


def test_the_store_holds_a_bounded_number_of_bytes() -> None:
    store = Continuations(max_bytes=7_000)
    first = capped(store)
    capped(store)
    assert store.total_bytes == 6_000
    capped(store)
    assert store.total_bytes == 6_000
    with pytest.raises(UnknownContinuationError):
        store.page(first, 2, principal=PRINCIPAL)


def test_a_rest_larger_than_the_store_is_dropped_and_said_so() -> None:
    store = Continuations(max_bytes=5_000)
    outcome = cap_result(result(text("y" * 9_000)), max_bytes=1_000, max_tokens=None, store=store)
    assert outcome.handle is None
    assert outcome.lost_bytes == 8_000
    assert "The rest (8,000 bytes) is more than the gateway keeps for paging and was dropped" in note(outcome.result)
    assert len(store) == 0


def test_the_outcome_summarises_itself() -> None:
    store = Continuations()
    outcome = cap_result(result(text("w " * 150), image(900)), max_bytes=200, max_tokens=500, store=store)
    assert outcome.to_dict() == {
        "shown_bytes": 200,
        "total_bytes": 300,
        "shown_tokens": tokens.count("w " * 100),
        "handle": outcome.handle,
        "kept_bytes": 100,
        "omitted": ["An image (image/png, 900 bytes)"],
        "lost_bytes": 900,
    }
