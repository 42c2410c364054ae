"""Redaction: every built-in rule masks its format and leaves a near miss alone.

Sample secrets are assembled at run time, so that secret scanners do not flag this file.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import mcp_types as types
import pytest

from quiver.config.policy import Redaction
from quiver.errors import ConfigError
from quiver.policy.redaction import (
    BUILTIN_RULES,
    CONFIGURED_SECRET,
    RedactingFilter,
    Redactor,
    install_log_redaction,
    mask,
    remove_log_redaction,
)

ALNUM = "A1b2C3d4E5f6G7h8J9k0"
JWT = "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" + "." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
PEM_BODY = "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2M\nMbf+8Jzx4xRK6b0NtH8w3sBZ==\n"
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\n" + PEM_BODY + "-----END RSA " + "PRIVATE KEY-----"
GITHUB = "gh" + "p_" + (ALNUM * 2)[:36]
AZURE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq" * 2)[:86] + "=="
SAS_SIG = "3QwBk0Y2rUJ6H0F4p7zV5kq8Xn9mD1sT2uW3vY4aB5c%3D"


def secret(*parts: str) -> str:
    return "".join(parts)


# rule name -> (text, the same text as masked)
POSITIVES: list[tuple[str, str, str | None]] = [
    ("private-key", f"key:\n{PEM}\nrest", "key:\n[REDACTED:private-key]\nrest"),
    (
        "private-key",
        '{"private_key": "-----BEGIN ' + "PRIVATE KEY-----\\nMIIEvQIBADAN\\n-----END " + 'PRIVATE KEY-----\\n"}',
        '{"private_key": "[REDACTED:private-key]"}',  # with the key's name, the whole value
    ),
    ("private-key", "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXk\nAAAA\n\ncut off", None),
    ("jwt", f"id_token {JWT} ok", "id_token [REDACTED:jwt] ok"),
    ("aws-access-key-id", f"key id {AWS_ID}.", "key id [REDACTED:aws-access-key-id]."),
    (
        "aws-secret-access-key",
        f"aws_secret_access_key = {AWS_SECRET}",
        "aws_secret_access_key = [REDACTED:aws-secret-access-key]",
    ),
    (
        "aws-secret-access-key",
        f'"SecretAccessKey": "{AWS_SECRET}"',
        '"SecretAccessKey": "[REDACTED:aws-secret-access-key]"',
    ),
    ("gcp-api-key", secret("url?key=AIza", "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"), "url?key=[REDACTED:gcp-api-key]"),
    (
        "azure-account-key",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:azure-account-key];"
        "EndpointSuffix=core.windows.net",
    ),
    (
        "azure-account-key",
        secret("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=", AZURE_KEY[:44]),
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=[REDACTED:azure-account-key]",
    ),
    (
        "azure-sas-token",
        f"https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sr=b&sig={SAS_SIG}&se=2030",
        "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sr=b&sig=[REDACTED:azure-sas-token]&se=2030",
    ),
    ("github-token", f"GITHUB_TOKEN {GITHUB}", "GITHUB_TOKEN [REDACTED:github-token]"),
    ("github-token", secret("github_", "pat_11ABCDEFG0", ALNUM * 4), "[REDACTED:github-token]"),
    ("gitlab-token", secret("glpat-", "xYz12AbC34dEf56GhI78"), "[REDACTED:gitlab-token]"),
    ("slack-token", secret("xoxb-", "1234567890-0987654321-", ALNUM), "[REDACTED:slack-token]"),
    (
        "slack-webhook",
        secret("https://hooks.slack.com/services/", "T00000000/B00000000/", ALNUM),
        "https://hooks.slack.com/services/[REDACTED:slack-webhook]",
    ),
    ("stripe-key", secret("stripe: sk_", "live_", ALNUM, "xyz"), "stripe: [REDACTED:stripe-key]"),
    ("stripe-key", secret("rk_", "test_", ALNUM), "[REDACTED:stripe-key]"),
    ("anthropic-key", secret("sk-", "ant-api03-", ALNUM * 5, "AA"), "[REDACTED:anthropic-key]"),
    ("openai-key", secret("OPENAI_API_KEY sk-", "proj-", ALNUM * 3), "OPENAI_API_KEY [REDACTED:openai-key]"),
    ("openai-key", secret("key sk-", ALNUM * 2, "T3BlbkFJ"), "key [REDACTED:openai-key]"),
    ("quiver-key", secret("qv_", "x" * 20, "-_", "Y" * 21), "[REDACTED:quiver-key]"),
    ("url-password", "postgres://app:hunter22@db:5432/app", "postgres://app:[REDACTED:url-password]@db:5432/app"),
    ("url-password", "redis://:s3cr3t@cache:6379", "redis://:[REDACTED:url-password]@cache:6379"),
    (
        "authorization-header",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==",
        "Authorization: Basic [REDACTED:authorization-header]",
    ),
    (
        "authorization-header",
        '{"authorization": "token 0123456789abcdef0123"}',
        '{"authorization": "token [REDACTED:authorization-header]"}',
    ),
    ("bearer-token", "send it as Bearer abc123def456ghi789", "send it as Bearer [REDACTED:bearer-token]"),
    ("secret-assignment", "DB_PASSWORD=hunter22\nDB_HOST=db", "DB_PASSWORD=[REDACTED:secret-assignment]\nDB_HOST=db"),
    ("secret-assignment", '{"api_key": "abc123xyz", "n": 1}', '{"api_key": "[REDACTED:secret-assignment]", "n": 1}'),
    ("secret-assignment", "client_secret: 'q8Z!x y'", "client_secret: '[REDACTED:secret-assignment]'"),
    ("secret-assignment", "Server=db;Uid=app;Pwd=Tr0ub4dor;", "Server=db;Uid=app;Pwd=[REDACTED:secret-assignment];"),
    ("secret-assignment", "?access_token=abc.def&x=1", "?access_token=[REDACTED:secret-assignment]&x=1"),
    ("secret-assignment", '"auth": "dXNlcjpwYXNz"', '"auth": "[REDACTED:secret-assignment]"'),
]

# rule name -> text that looks close but holds no secret
NEGATIVES: list[tuple[str, str]] = [
    ("private-key", "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----"),
    ("private-key", "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9 is base64 for a JSON header"),
    ("jwt", "version eyJ1.2.3 and heyJude.example.com"),
    ("aws-access-key-id", "AKIAIOSFODNN7EXAMPL is one short; XAKIAIOSFODNN7EXAMPLE runs on"),
    ("aws-secret-access-key", "commit da39a3ee5e6b4b0d3255bfef95601890afd80709 and secret_access_key_id: 12"),
    ("gcp-api-key", "AIzaSyD-short and AIzaBeforeTheRest"),
    ("azure-account-key", "AccountName=devstoreaccount1;AccountKey=short;"),
    ("azure-sas-token", "?sig=short&config=value&design=a-long-design-document-name-here"),
    ("github-token", "ghp_short and ghx_" + ALNUM * 2),
    ("gitlab-token", "glpat-abc and glpat is a prefix"),
    ("slack-token", "xoxo hugs, xoxb-123"),
    ("slack-webhook", "https://hooks.slack.com/ and https://api.slack.com/services/T0/B0"),
    ("stripe-key", "pk_live_" + ALNUM + " is publishable; sk_live_short"),
    ("anthropic-key", "sk-ant-short"),
    ("openai-key", "sk-learn-compatible-estimator-wrappers and risk-" + ALNUM * 2),
    ("quiver-key", "qv_short and qv_" + "x" * 50),
    ("url-password", "https://example.com:8443/path?q=a@b ssh://git@github.com/org/repo.git http://[::1]:80/"),
    ("authorization-header", "Authorization: required for the admin API"),
    ("bearer-token", "the bearer of this letter; Bearer token"),
    ("secret-assignment", "PASSWORD=${DB_PASSWORD}; password: null; token: <your token>; password=***"),
    ("secret-assignment", '{"nextPageToken": "CAESBggDEAEY", "max_tokens": 4096, "progressToken": "p-1"}'),
    ("secret-assignment", "PWD=/home/me\nOLDPWD=~/src\nauth:\n  keys: true\noauth: enabled"),
]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


def test_every_builtin_rule_has_a_positive_and_a_negative_case() -> None:
    names = {rule.name for rule in BUILTIN_RULES}
    assert names == {name for name, _, _ in POSITIVES}
    assert names == {name for name, _ in NEGATIVES}


def test_builtin_rules_start_with_a_literal() -> None:
    """A leading literal lets the engine skip to candidates; a class or group there costs 10x."""
    for rule in BUILTIN_RULES:
        assert rule.pattern[0] not in "([\\.^", rule.name


@pytest.mark.parametrize(("name", "text", "expected"), POSITIVES, ids=[case[0] for case in POSITIVES])
def test_rule_masks_its_format(redactor: Redactor, name: str, text: str, expected: str | None) -> None:
    counts: Counter[str] = Counter()
    masked, found = redactor.redact_text(text, counts)
    assert found == 1
    assert counts == {name: 1}
    if expected is not None:
        assert masked == expected
    assert mask(name) in masked


@pytest.mark.parametrize(("name", "text"), NEGATIVES, ids=[case[0] for case in NEGATIVES])
def test_rule_leaves_near_misses(redactor: Redactor, name: str, text: str) -> None:
    assert redactor.redact_text(text) == (text, 0)


def test_truncated_private_key_masks_its_lines_but_not_what_follows(redactor: Redactor) -> None:
    text = "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXk\nAAAA\n\nthe output was cut off"
    assert redactor.redact_text(text) == ("[REDACTED:private-key]\nthe output was cut off", 1)


def test_ordinary_identifiers_and_data_pass(redactor: Redactor) -> None:
    rng = random.Random(7)
    image = base64.b64encode(rng.randbytes(200_000)).decode()
    text = "\n".join(
        [
            "commit 3f2a9c4e1b7d8a6f5e4d3c2b1a09f8e7d6c5b4a3 (HEAD -> main)",
            f"request {uuid.UUID(int=rng.getrandbits(128))} took 12 ms",
            "sha256:" + rng.randbytes(32).hex(),
            f"data:image/png;base64,{image}",
            "export PATH=/usr/bin:$PATH; see https://docs.example.com/a/b?x=1#y",
            "The token limit is 4096; tokens: 12; pass: 3 tests; secrets are kept in the vault.",
        ]
    )
    assert redactor.redact_text(text) == (text, 0)


def test_masks_are_not_masked_again(redactor: Redactor) -> None:
    for _, text, _ in POSITIVES:
        once, _ = redactor.redact_text(text)
        assert redactor.redact_text(once) == (once, 0)


def test_overlapping_finds_become_one_mask(redactor: Redactor) -> None:
    masked, found = redactor.redact_text(f"Authorization: Bearer {JWT}")
    assert (masked, found) == ("Authorization: Bearer [REDACTED:jwt]", 1)


def test_non_ascii_text_is_searched_case_insensitively() -> None:
    # 'İ' lowercases to two characters, so the lowercased text cannot stand in for this one.
    text = "İstanbul café: PASSWORD=hunter22 and Authorization: Bearer abc123def456ghi789"
    masked, found = Redactor().redact_text(text)
    assert found == 2
    assert masked == (
        "İstanbul café: PASSWORD=[REDACTED:secret-assignment] and Authorization: Bearer [REDACTED:authorization-header]"
    )


# -- configured secrets and patterns


def test_configured_secrets_are_masked_in_every_spelling() -> None:
    value = 'p@ss w0rd/"x"'
    redactor = Redactor(secrets=[value, "short", "kept-as-well"])
    text = f'raw {value} json "p@ss w0rd/\\"x\\"" url p%40ss%20w0rd%2F%22x%22 and short and kept-as-well'
    masked, found = redactor.redact_text(text)
    assert found == 4
    assert masked == (
        f'raw {mask(CONFIGURED_SECRET)} json "{mask(CONFIGURED_SECRET)}" url {mask(CONFIGURED_SECRET)}'
        f" and short and {mask(CONFIGURED_SECRET)}"
    )


def test_a_configured_secret_wins_over_a_rule_that_finds_only_part_of_it() -> None:
    value = "prefix-" + GITHUB
    masked, found = Redactor(secrets=[value]).redact_text(f"[{value}]")
    assert (masked, found) == (f"[{mask(CONFIGURED_SECRET)}]", 1)


def test_configured_patterns_are_named_by_position() -> None:
    redactor = Redactor(patterns=[r"ACME-[0-9]{6}", r"^internal: (?P<secret>\w+)$"])
    assert redactor.names[-2:] == ["pattern-1", "pattern-2"]
    text = "ticket ACME-123456\ninternal: codeword\nexternal: fine"
    masked, found = redactor.redact_text(text)
    assert found == 2
    assert masked == "ticket [REDACTED:pattern-1]\ninternal: [REDACTED:pattern-2]\nexternal: fine"


def test_builtin_rules_can_be_turned_off() -> None:
    redactor = Redactor.from_config(Redaction(builtin=False, patterns=["ACME-[0-9]+"]))
    assert redactor.names == ["pattern-1"]
    assert redactor.redact_text(f"{GITHUB} ACME-1") == (f"{GITHUB} [REDACTED:pattern-1]", 1)
    assert redactor.redact_value({"password": "hunter22"}) == ({"password": "hunter22"}, 0)


def test_an_invalid_pattern_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Redactor(patterns=["fine", "broken(["])
    assert "policy.redaction.patterns[1]" in caught.value.message
    assert "'broken(['" in caught.value.message
    assert caught.value.hint


def test_a_pattern_that_matches_nothing_at_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="matches the empty string"):
        Redactor(patterns=["[0-9]*"])


# -- values and results


def test_redact_value_walks_strings_and_keeps_keys(redactor: Redactor) -> None:
    value = {
        GITHUB: "a key that is a token stays a key",
        "items": [{"note": f"use {AWS_ID}"}, 3, None, True, ("t", f"sk_live_{ALNUM}")],
        "password": "hunter22",
        "clientSecret": "abc",
        "nextPageToken": "CAESBggDEAEY",
        "pwd": "/home/me",
        "token": None,
    }
    counts: Counter[str] = Counter()
    masked, found = redactor.redact_value(value, counts)
    assert found == 4
    assert counts == {"aws-access-key-id": 1, "stripe-key": 1, "secret-assignment": 2}
    assert masked == {
        GITHUB: "a key that is a token stays a key",
        "items": [{"note": "use [REDACTED:aws-access-key-id]"}, 3, None, True, ("t", "[REDACTED:stripe-key]")],
        "password": "[REDACTED:secret-assignment]",
        "clientSecret": "[REDACTED:secret-assignment]",
        "nextPageToken": "CAESBggDEAEY",
        "pwd": "/home/me",
        "token": None,
    }


def test_redact_value_returns_the_same_object_when_clean(redactor: Redactor) -> None:
    value = {"a": ["b", {"c": 1}], "d": "e"}
    masked, found = redactor.redact_value(value)
    assert found == 0
    assert masked is value


def test_strings_are_searched_one_by_one_when_a_match_would_join_two() -> None:
    redactor = Redactor(patterns=[r"foo[\s\S]*bar"])
    assert redactor.redact_value(["foo", "bar"]) == (["foo", "bar"], 0)
    assert redactor.redact_value(["foo", "x foo y bar"]) == (["foo", "x [REDACTED:pattern-1]"], 1)


def test_a_string_holding_the_separator_is_handled(redactor: Redactor) -> None:
    value = ["a\n\x00\nb", f"c {AWS_ID}"]
    assert redactor.redact_value(value) == (["a\n\x00\nb", "c [REDACTED:aws-access-key-id]"], 1)


def test_redact_result_masks_text_and_leaves_binary_data(redactor: Redactor) -> None:
    image_data = base64.b64encode(b"\x00" * 10 + GITHUB.encode()).decode()
    result = types.CallToolResult(
        content=[
            types.TextContent(type="text", text=f"token={GITHUB}"),
            types.ImageContent(type="image", data=image_data, mime_type="image/png"),
            types.AudioContent(type="audio", data=GITHUB, mime_type="audio/wav"),
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(uri="file:///env", text=f"AWS_ACCESS_KEY_ID={AWS_ID}"),
            ),
            types.EmbeddedResource(
                type="resource", resource=types.BlobResourceContents(uri="file:///bin", blob=GITHUB)
            ),
            types.ResourceLink(type="resource_link", name="db", uri="postgres://app:hunter22@db/app"),
        ],
        structured_content={"env": {"API_KEY": "abc123"}, "ok": True},
        _meta={"note": f"key {AWS_ID}"},
        is_error=True,
    )
    masked, found = redactor.redact_result(result)
    assert found == 5
    text, image, audio, resource, blob, link = masked.content
    assert isinstance(text, types.TextContent)
    assert text.text == "token=[REDACTED:github-token]"
    assert image == result.content[1]
    assert audio == result.content[2]
    assert isinstance(resource, types.EmbeddedResource)
    assert isinstance(resource.resource, types.TextResourceContents)
    assert resource.resource.text == "AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key-id]"
    assert blob == result.content[4]
    assert isinstance(link, types.ResourceLink)
    assert link.uri == "postgres://app:[REDACTED:url-password]@db/app"
    assert link.title is None
    assert masked.structured_content == {"env": {"API_KEY": "[REDACTED:secret-assignment]"}, "ok": True}
    assert masked.meta == {"note": "key [REDACTED:aws-access-key-id]"}
    assert masked.is_error is True
    # The input is never changed.
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text == f"token={GITHUB}"


def test_redact_result_returns_the_same_result_when_clean(redactor: Redactor) -> None:
    result = types.CallToolResult(
        content=[types.TextContent(type="text", text="all fine")], structured_content={"x": "y"}
    )
    assert redactor.redact_result(result) == (result, 0)
    assert redactor.redact_result(result)[0] is result


def test_redact_error(redactor: Redactor) -> None:
    assert redactor.redact_error(f"cannot connect to postgres://u:pw1234@db ({GITHUB})") == (
        "cannot connect to postgres://u:[REDACTED:url-password]@db ([REDACTED:github-token])"
    )


# -- logs


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger = logging.getLogger("quiver.tests.redaction")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # first: the test run may add its own handlers after it
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.handlers.insert(0, handler)
    logger.propagate = False
    yield logger, stream
    remove_log_redaction(logger)
    logger.removeHandler(handler)
    logger.propagate = True


def test_log_records_are_masked_after_formatting(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    install_log_redaction(Redactor(secrets=["env-value-123"]), logger)
    logger.warning("backend %s failed with %s", "db", "password=hunter22 env-value-123")
    try:
        raise RuntimeError(f"connect postgres://app:hunter22@db failed, token {GITHUB}")
    except RuntimeError:
        logger.exception("call failed")
    output = stream.getvalue()
    assert "hunter22" not in output
    assert GITHUB not in output
    assert "env-value-123" not in output
    assert "WARNING backend db failed with password=[REDACTED:secret-assignment] [REDACTED:configured-secret]" in output
    assert (
        "RuntimeError: connect postgres://app:[REDACTED:url-password]@db failed, token [REDACTED:github-token]"
        in output
    )
    assert "Traceback" in output


def test_installing_twice_replaces_the_filter(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, _ = captured
    handler = logger.handlers[0]
    install_log_redaction(Redactor(), logger)
    second = install_log_redaction(Redactor(), logger)
    assert [f for f in handler.filters if isinstance(f, RedactingFilter)] == [second]
    remove_log_redaction(logger)
    assert not handler.filters


def test_a_record_with_a_bad_format_string_still_passes(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, _ = captured
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "%d", ("x",), None)
    assert RedactingFilter(Redactor()).filter(record) is True


# -- speed


@pytest.mark.parametrize(
    "unit",
    [
        'password="',
        "password=",
        "-----BEGIN " + "PRIVATE KEY-----",
        "-----BEGIN " + "PRIVATE KEY-----\nComment: aaaa bbbb\n",
        "eyJ",
        "://a:",
        "Authorization: ",
        "AKIA",
        "sk-",
    ],
)
def test_no_input_makes_a_rule_slow(redactor: Redactor, unit: str) -> None:
    text = unit * (300_000 // len(unit))
    started = time.perf_counter()
    redactor.redact_text(text)
    # Not a speed test (bench/redaction_bench.py measures that): a backtracking rule takes minutes
    # on this input, a linear one milliseconds, so even a loaded machine stays far inside the bound.
    assert time.perf_counter() - started < 5


def test_the_one_search_screen_finds_what_the_rules_find() -> None:
    """A short text is cleared by one combined search; it must never clear what a rule would mask."""
    screened = Redactor(patterns=[r"ACME-[0-9]{6}", r"^internal: (?P<secret>\w+)$"])
    unscreened = Redactor(patterns=[r"ACME-[0-9]{6}", r"^internal: (?P<secret>\w+)$"])
    unscreened._matcher = dataclasses.replace(unscreened._matcher, screen=None)
    samples = [text for _, text, _ in POSITIVES] + [text for _, text in NEGATIVES]
    samples += ["ticket ACME-123456", "x\ninternal: codeword\ny", "İSTANBUL PASSWORD=hunter22", "plain words"]
    for text in samples:
        assert screened.redact_text(text) == unscreened.redact_text(text), text


def test_a_pattern_with_a_back_reference_is_searched_on_its_own() -> None:
    redactor = Redactor(patterns=[r"(\w)\1{5}"])
    assert redactor.redact_text("id aaaaaa end") == ("id [REDACTED:pattern-1] end", 1)
