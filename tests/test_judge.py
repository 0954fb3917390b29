"""ChatCompletionsJudge against a real HTTP server on 127.0.0.1: requests, parsing, retries,
timeouts, caching, concurrency, and an API key that never leaks."""

import json
import logging
import socket
import time

import pytest
from chat_server import Reply, answer, chat_server, completion

from fdenv.judge.client import (
    FDBENCH_RELEVANCE,
    NO_CONTEXT,
    NO_RESPONSE,
    PAPER_RUBRIC,
    ChatCompletionsJudge,
    JudgeRequest,
    Rubric,
    load_rubric,
)

REQUEST = JudgeRequest(
    context="User: I just got back from Lisbon.",
    user_turn="What should I cook tonight?",
    response="Maybe grilled sardines, since you liked Lisbon.",
)
FAST = {"timeout_s": 2.0, "backoff_s": 0.01, "backoff_max_s": 0.02}


def make_judge(url: str, **kwargs) -> ChatCompletionsJudge:
    return ChatCompletionsJudge(url, "judge-model", **(FAST | kwargs))


def request(i: int) -> JudgeRequest:
    return JudgeRequest("", f"turn {i}", f"reply {i}")


# ------------------------------------------------------------------------- the protocol


def test_request_follows_the_chat_completions_protocol(monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-test-123")
    with chat_server(answer("2")) as server:
        judge = make_judge(server.url, api_key_env="JUDGE_TEST_KEY")
        assert judge.score([REQUEST]) == [2.0]
    assert server.paths == ["/v1/chat/completions"]
    assert server.headers[0]["Authorization"] == "Bearer sk-test-123"
    body = server.bodies[0]
    assert body["model"] == "judge-model"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 8
    system, user = body["messages"]
    assert system == {"role": "system", "content": PAPER_RUBRIC.instructions}
    assert user["role"] == "user"
    for part in (REQUEST.context, REQUEST.user_turn, REQUEST.response):
        assert part in user["content"]


def test_no_key_sends_no_authorization_and_extra_body_is_sent():
    extra = {"chat_template_kwargs": {"enable_thinking": False}}
    with chat_server(answer("1")) as server:
        judge = make_judge(server.url + "/", extra_body=extra, max_tokens=4)
        assert judge.score([REQUEST]) == [1.0]
    assert "Authorization" not in server.headers[0]
    assert server.paths == ["/v1/chat/completions"]  # a trailing slash in base_url is fine
    assert server.bodies[0]["chat_template_kwargs"] == {"enable_thinking": False}
    assert server.bodies[0]["max_tokens"] == 4


def test_empty_context_and_silence_are_spelled_out():
    messages = PAPER_RUBRIC.messages(JudgeRequest("  ", "Hello?", ""))
    assert NO_CONTEXT in messages[1]["content"] and NO_RESPONSE in messages[1]["content"]


def test_scores_come_back_in_request_order():
    # the server grades by the reply's number, so a mix-up would show
    def script(call, body):
        return completion(body["messages"][1]["content"].split("reply ")[1][0])

    with chat_server(script) as server:
        judge = make_judge(server.url, max_concurrency=4)
        assert judge.score([request(i % 3) for i in range(7)]) == [
            0.0,
            1.0,
            2.0,
            0.0,
            1.0,
            2.0,
            0.0,
        ]
        assert judge.score([]) == []
    assert server.calls == 3  # identical exchanges in one batch are asked once
    assert judge.stats.requests == 7 and judge.stats.duplicates == 4 and judge.stats.scored == 3


# ------------------------------------------------------------------------------- the parser


@pytest.mark.parametrize("reply", ["2", " 2", "2\n", "2.", " 2. \n", "\t0", "1."])
def test_parser_accepts_a_bare_score(reply):
    assert PAPER_RUBRIC.parse(reply) == int(reply.strip().rstrip("."))


@pytest.mark.parametrize(
    "reply",
    ["", " ", "Score: 2", "2/2", "2.0", "**2**", "1 or 2", "2 2", "3", "-1", "+1", "02",
     "two", "2..", ". 2", "2!", "²", "2\n\nBecause it is specific."],
)  # fmt: skip
def test_parser_rejects_anything_but_the_score(reply):
    assert PAPER_RUBRIC.parse(reply) is None


def test_fdbench_rubric_scores_zero_to_five():
    assert [FDBENCH_RELEVANCE.parse(str(s)) for s in range(7)] == [0, 1, 2, 3, 4, 5, None]
    with chat_server(answer("4")) as server:
        judge = make_judge(server.url, rubric=FDBENCH_RELEVANCE)
        assert judge.score([REQUEST]) == [4.0]
    assert server.bodies[0]["messages"][0]["content"] == FDBENCH_RELEVANCE.instructions


@pytest.mark.parametrize("content", ["The reply deserves a 2.", "5", "", None, 2, ["2"]])
def test_a_reply_that_is_not_a_score_fails_without_retry(content):
    with chat_server(answer(content)) as server:
        judge = make_judge(server.url, max_retries=3)
        assert judge.score([REQUEST]) == [None]
    reason = "unparsable" if isinstance(content, str) else "malformed"
    assert dict(judge.stats.failures) == {reason: 1}
    assert server.calls == 1  # temperature 0 would say the same again


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[]", b'{"choices": []}', b'{"choices": [{"text": "2"}]}', b"\xff\xfe"],
)
def test_a_malformed_body_fails_without_retry(body):
    with chat_server(lambda call, _: Reply(200, body)) as server:
        judge = make_judge(server.url, max_retries=3)
        assert judge.score([REQUEST]) == [None]
    assert dict(judge.stats.failures) == {"malformed": 1} and server.calls == 1


def test_an_undecodable_body_is_malformed():
    gzip_lie = Reply(200, completion("2").body, headers=(("Content-Encoding", "gzip"),))
    with chat_server(lambda call, _: gzip_lie) as server:
        judge = make_judge(server.url, max_retries=3)
        assert judge.score([REQUEST]) == [None]
    assert dict(judge.stats.failures) == {"malformed": 1} and server.calls == 1


# ----------------------------------------------------------------------- failures, retries


def test_5xx_is_retried_with_backoff_then_succeeds():
    def script(call, _):
        return Reply(500, b'{"error": "overloaded"}') if call < 2 else completion("1")

    with chat_server(script) as server:
        judge = make_judge(server.url, max_retries=3, backoff_s=0.04, backoff_max_s=1.0)
        started = time.perf_counter()
        assert judge.score([REQUEST]) == [1.0]
        elapsed = time.perf_counter() - started
    assert server.calls == 3
    assert judge.stats.retries == 2 and judge.stats.http_calls == 3 and not judge.stats.failures
    # waits of 0.04 and 0.08 s, each scaled by a jitter in [0.5, 1]: at least 0.06 s in all
    assert elapsed >= 0.06


def test_persistent_5xx_fails_after_the_retries():
    with chat_server(lambda call, _: Reply(503, b"")) as server:
        judge = make_judge(server.url, max_retries=2)
        assert judge.score([REQUEST]) == [None]
    assert server.calls == 3 and dict(judge.stats.failures) == {"http_503": 1}


@pytest.mark.parametrize(("status", "calls"), [(400, 1), (401, 1), (404, 1), (429, 3), (408, 3)])
def test_client_errors_are_final_but_rate_limits_are_retried(status, calls):
    with chat_server(lambda call, _: Reply(status, b'{"error": "x"}')) as server:
        judge = make_judge(server.url, max_retries=2)
        assert judge.score([REQUEST]) == [None]
    assert server.calls == calls and dict(judge.stats.failures) == {f"http_{status}": 1}


def test_a_slow_server_hits_the_timeout():
    with chat_server(lambda call, _: completion("2", delay_s=5.0)) as server:
        judge = make_judge(server.url, timeout_s=0.1, max_retries=1)
        started = time.perf_counter()
        assert judge.score([REQUEST]) == [None]
        elapsed = time.perf_counter() - started
        assert server.calls == 2
    assert dict(judge.stats.failures) == {"timeout": 1}
    assert elapsed < 1.0


@pytest.mark.parametrize("trickle_headers", [False, True])
def test_a_trickling_server_is_cut_off_at_the_attempts_deadline(trickle_headers):
    """One byte a second never trips httpx's per-read timeout; the attempt's deadline does."""
    reply = Reply(200, completion("2").body, trickle_s=1.0, trickle_headers=trickle_headers)
    with chat_server(lambda call, _: reply) as server:
        judge = make_judge(server.url, timeout_s=1.0, max_retries=0)
        started = time.perf_counter()
        assert judge.score([REQUEST]) == [None]
        elapsed = time.perf_counter() - started
    assert dict(judge.stats.failures) == {"timeout": 1}
    assert elapsed < 2.0


def test_an_endless_body_is_cut_off_as_malformed():
    """A body past any chat completion's size is not read to the end (nor into memory)."""
    body = b"{" + b" " * (4 * 1024 * 1024)
    with chat_server(lambda call, _: Reply(200, body)) as server:
        judge = make_judge(server.url, max_retries=0)
        assert judge.score([REQUEST]) == [None]
    assert dict(judge.stats.failures) == {"malformed": 1}


def closed_url() -> str:
    """The API root of a server that is down: a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_a_server_that_is_down_is_a_connection_failure():
    judge = make_judge(closed_url(), max_retries=1)
    assert judge.score([REQUEST, request(1)]) == [None, None]
    assert dict(judge.stats.failures) == {"connection": 2}
    assert judge.stats.http_calls == 4 and judge.stats.retries == 2


def test_one_failure_does_not_spoil_the_batch():
    def script(call, body):
        return Reply(500, b"") if "reply 1" in body["messages"][1]["content"] else completion("2")

    with chat_server(script) as server:
        judge = make_judge(server.url, max_retries=1)
        assert judge.score([request(0), request(1), request(2)]) == [2.0, None, 2.0]
    assert judge.stats.as_dict() == {
        "judge_requests": 3,
        "judge_duplicates": 0,
        "judge_cache_hits": 0,
        "judge_scored": 2,
        "judge_http_calls": 4,
        "judge_retries": 1,
        "judge_failures": 1,
        "judge_failures_http_500": 1,
    }


# ------------------------------------------------------------------------------ concurrency


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_limit_holds(limit):
    # slow enough replies that every worker is in flight before the first one returns
    with chat_server(lambda call, _: completion("1", delay_s=0.25)) as server:
        judge = make_judge(server.url, max_concurrency=limit)
        assert judge.score([request(i) for i in range(6)]) == [1.0] * 6
    assert server.max_in_flight == limit


# ------------------------------------------------------------------------------------ cache


def test_cache_answers_repeated_requests_across_judges(tmp_path):
    with chat_server(answer("2")) as server:
        first = make_judge(server.url, cache_dir=tmp_path)
        assert first.score([REQUEST]) == [2.0]
        second = make_judge(server.url, cache_dir=tmp_path)
        assert second.score([REQUEST, REQUEST]) == [2.0, 2.0]
        assert server.calls == 1
        assert second.stats.cache_hits == 1 and second.stats.http_calls == 0
        # another model, rubric, temperature or exchange is another question
        make_judge(server.url.replace("/v1", "/v1/"), cache_dir=tmp_path).score([REQUEST])
        assert server.calls == 1  # the same endpoint
        ChatCompletionsJudge(server.url, "other", cache_dir=tmp_path).score([REQUEST])
        make_judge(server.url, cache_dir=tmp_path, rubric=FDBENCH_RELEVANCE).score([REQUEST])
        make_judge(server.url, cache_dir=tmp_path, temperature=0.5).score([REQUEST])
        make_judge(server.url, cache_dir=tmp_path).score([request(9)])
        assert server.calls == 5
    files = sorted(tmp_path.rglob("*.json"))
    assert len(files) == 5 and not list(tmp_path.rglob(".tmp-*"))
    assert all(json.loads(f.read_text()) == {"score": 2, "reply": "2"} for f in files)


def test_failures_are_not_cached_and_a_corrupt_entry_is_a_miss(tmp_path):
    with chat_server(lambda call, _: Reply(500, b"") if call == 0 else completion("1")) as server:
        judge = make_judge(server.url, cache_dir=tmp_path, max_retries=0)
        assert judge.score([REQUEST]) == [None]
        assert not list(tmp_path.rglob("*.json"))
        assert judge.score([REQUEST]) == [1.0]
        (entry,) = tmp_path.rglob("*.json")
        entry.write_text("{truncated")
        assert judge.score([REQUEST]) == [1.0]
        assert server.calls == 3
        entry.write_text(json.dumps({"score": 7, "reply": "7"}))  # off the rubric's scale
        assert judge.score([REQUEST]) == [1.0] and server.calls == 4
    assert json.loads(entry.read_text()) == {"score": 1, "reply": "1"}


# --------------------------------------------------------------------------- the API key


def test_the_api_key_never_leaks(monkeypatch, tmp_path, caplog):
    secret = "sk-very-secret-0123456789"
    monkeypatch.setenv("JUDGE_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with chat_server(lambda call, _: Reply(500, b"") if call == 0 else completion("2")) as server:
        judge = make_judge(server.url, api_key_env="JUDGE_TEST_KEY", cache_dir=tmp_path)
        assert judge.score([REQUEST]) == [2.0]
        assert server.headers[0]["Authorization"] == f"Bearer {secret}"
    dead = make_judge(closed_url(), api_key_env="JUDGE_TEST_KEY", max_retries=0)
    assert dead.score([REQUEST]) == [None]
    payload = {"model": "judge-model", "messages": PAPER_RUBRIC.messages(REQUEST)}
    seen = [
        repr(judge),
        str(judge.__dict__.get("stats")),
        caplog.text,
        judge.cache_key(payload),
        *(p.read_text() for p in tmp_path.rglob("*") if p.is_file()),
    ]
    assert caplog.text  # the failures were logged
    assert all(secret not in text for text in seen)
    assert "JUDGE_TEST_KEY" in repr(judge)


def test_a_named_key_variable_must_be_set(monkeypatch):
    monkeypatch.delenv("JUDGE_TEST_MISSING", raising=False)
    with pytest.raises(ValueError, match="JUDGE_TEST_MISSING"):
        ChatCompletionsJudge("http://127.0.0.1:1/v1", "m", api_key_env="JUDGE_TEST_MISSING")


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "ftp://127.0.0.1/v1"}, "http"),
        ({"base_url": "not a url"}, "http"),
        ({"base_url": "http://[::1"}, "http"),
        ({"model": ""}, "model"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_s": -0.1}, "backoff_s"),
        ({"backoff_s": 2.0, "backoff_max_s": 1.0}, "backoff_max_s"),
        ({"temperature": -1.0}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"extra_body": {"messages": []}}, "extra_body"),
        ({"extra_body": {"seed": object()}}, "JSON"),
    ],
)
def test_bad_configuration_raises(kwargs, match):
    args = {"base_url": "http://127.0.0.1:1/v1", "model": "m"} | kwargs
    with pytest.raises(ValueError, match=match):
        ChatCompletionsJudge(args.pop("base_url"), args.pop("model"), **args)


@pytest.mark.parametrize(
    ("template", "scores", "match"),
    [
        ("{context} {user_turn}", (0, 1), "template fields"),
        ("{context} {user_turn} {response} {extra}", (0, 1), "template fields"),
        ("{context} {user_turn} {response} {", (0, 1), "bad template"),
        ("{context} {user_turn} {response}", (), "distinct"),
        ("{context} {user_turn} {response}", (1, 1), "distinct"),
        ("{context} {user_turn} {response}", (0, 1.5), "integers"),
        ("{context} {user_turn} {response}", (-1, 0), "integers"),
    ],
)
def test_bad_rubrics_raise(template, scores, match):
    with pytest.raises(ValueError, match=match):
        Rubric("custom", "instructions", template, scores)


def test_load_rubric_by_name_or_file(tmp_path):
    assert load_rubric("paper") is PAPER_RUBRIC and load_rubric("fdbench") is FDBENCH_RELEVANCE
    path = tmp_path / "yesno.json"
    path.write_text(
        json.dumps(
            {
                "instructions": "Is the reply on topic? 1 yes, 0 no.",
                "template": "{context}|{user_turn}|{response}",
                "scores": [0, 1],
            }
        )
    )
    rubric = load_rubric(str(path))
    assert (rubric.name, rubric.scores) == ("yesno", (0, 1))
    assert rubric.messages(JudgeRequest("a", "b", "c"))[1]["content"] == "a|b|c"
    with pytest.raises(ValueError, match="neither"):
        load_rubric("nonexistent")
    path.write_text('{"instructions": "x"}')
    with pytest.raises(ValueError, match="needs"):
        load_rubric(str(path))
    path.write_text("{oops")
    with pytest.raises(ValueError, match="not a JSON rubric"):
        load_rubric(str(path))
