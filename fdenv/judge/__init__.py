"""The LLM judge: a chat-completions client that grades replies (:mod:`~fdenv.judge.client`)
and the reward term that transcribes an episode's exchange for it (:mod:`~fdenv.judge.reward`)."""

from fdenv.judge.client import (
    FDBENCH_RELEVANCE,
    PAPER_RUBRIC,
    ChatCompletionsJudge,
    Judge,
    JudgeRequest,
    load_rubric,
)
from fdenv.judge.reward import JudgeTerms, judge_terms

__all__ = [
    "FDBENCH_RELEVANCE",
    "PAPER_RUBRIC",
    "ChatCompletionsJudge",
    "Judge",
    "JudgeRequest",
    "JudgeTerms",
    "judge_terms",
    "load_rubric",
]
