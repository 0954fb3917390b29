"""The warm-start recipe: targets in the right frames, the policy's user codes, training, cache."""

import numpy as np
import pytest
import torch
from conftest import noise_scenario

from agents.baselines import RuleAgent, SilentAgent
from agents.cli.warmstart import evaluate
from agents.moshi.logprobs import delayed_codes
from agents.moshi.models import tiny_models
from agents.moshi.policy import MoshiPolicy
from agents.moshi.warmstart import (
    WarmstartConfig,
    base_path,
    tiny_base_models,
    train,
    warmstart_loss,
)
from agents.moshi.warmstart_data import (
    SpokenLine,
    WarmstartPartner,
    encode_dialogues,
    make_dialogue,
    pad_sequences,
    silence_codes,
)
from fdenv.axes import Axis, AxisScore, Backchannel, PauseHandling, TurnTaking, UserInterruption
from fdenv.constants import EPAD_ID, FRAME_S, PAD_ID
from fdenv.engine import make_stream
from fdenv.scenario import Word
from fdenv.timeline import Interval

LEAD = 3.0


@pytest.fixture(scope="module")
def models():
    return tiny_models(seed=3)


def hand_lines() -> list[SpokenLine]:
    """Words at hand-picked times; env frame k starts at 0.08 k - 3.0 s (scenario time)."""
    return [
        # 'right' at 2.3 s: env frame 66; 'okay' at 2.5 s: env frame 68
        SpokenLine((Word("right", 2.3, 2.5), Word("okay", 2.5, 2.9))),
        # 'exactly' at 3.0 s: env frame 75-77; 'right' at 3.1 s (frame 76) waits for frame 79
        SpokenLine((Word("exactly", 3.0, 3.1), Word("right", 3.1, 3.4))),
        # cut at 4.1 s (frame 88): only the first piece of 'exactly' (frame 87) is said
        SpokenLine((Word("exactly", 4.0, 4.3), Word("right", 4.3, 4.5)), stop=4.1),
    ]


def test_text_targets_land_in_the_intended_frames(models):
    tokenizer = models.tokenizer
    right, okay, exactly = (tokenizer.encode(w) for w in ("right", "okay", "exactly"))
    assert (len(right), len(okay), len(exactly)) == (1, 2, 3)
    scenario = noise_scenario("TurnTaking", 5.0, [(0.5, 2.0)], turn_end=2.0)
    dialogue = make_dialogue(scenario, hand_lines(), tokenizer, LEAD)
    expected_env = np.full(100, PAD_ID)  # (3 s + 5 s) / 80 ms
    for frame, token in {
        65: EPAD_ID,
        66: right[0],
        67: EPAD_ID,
        68: okay[0],
        69: okay[1],
        74: EPAD_ID,
        75: exactly[0],
        76: exactly[1],
        77: exactly[2],
        78: EPAD_ID,
        79: right[0],
        86: EPAD_ID,
        87: exactly[0],
    }.items():
        expected_env[frame] = token
    np.testing.assert_array_equal(dialogue.text, expected_env)

    (codes,) = encode_dialogues(models.mimi, [dialogue])
    assert codes.shape == (17, 99)
    # Moshi frame j is env frame j + 1: EPAD at 64, 'right' at 65, ...
    np.testing.assert_array_equal(codes[0].numpy(), expected_env[1:])
    assert codes[0, 64] == EPAD_ID and codes[0, 65] == right[0] and codes[0, 86] == exactly[0]
    # no audio to speak: the agent's codebooks hold Mimi's silence throughout
    assert (codes[1:9] == silence_codes(models.mimi)[:, None]).all()


def test_spoken_audio_is_encoded_where_the_line_starts(models):
    scenario = noise_scenario("TurnTaking", 5.0, [(0.5, 2.0)], turn_end=2.0)
    speech = np.full(4000, 0.2, dtype=np.float32)
    line = SpokenLine((Word("right", 2.3, 2.5),), speech)
    dialogue = make_dialogue(scenario, [line], models.tokenizer, LEAD)
    ((first, clip),) = dialogue.clips
    assert first == 66 and len(clip) % 1920 == 0
    offset = round(5.3 * 24000) - 66 * 1920  # the speech starts 480 samples into frame 66
    np.testing.assert_array_equal(clip[offset : offset + 4000], speech)
    assert not clip[:offset].any()


def test_reference_lines_follow_the_labels():
    config = WarmstartConfig()
    partner = WarmstartPartner(
        np.random.default_rng(0), config.reply_delay_s, config.stop_after_frames
    )
    pause = noise_scenario(
        "PauseHandling", 5.0, [(0.5, 2.0), (2.6, 4.5)], pauses=[Interval(2, 2.6)]
    )
    assert PauseHandling().reference_lines(pause, partner) == []

    turn = noise_scenario("TurnTaking", 9.0, [(0.5, 6.0)], turn_end=6.0)
    (answer,) = TurnTaking().reference_lines(turn, partner)
    assert 6.2 <= answer.start <= 6.5 and answer.stop is None and len(answer.text.split()) > 3

    truths = [Interval(2.1, 2.5), Interval(4.2, 4.6)]
    backchannel = noise_scenario(
        "Backchannel", 7.0, [(0.5, 2.0), (2.6, 4.1), (4.8, 6.5)], backchannels=truths
    )
    lines = Backchannel().reference_lines(backchannel, partner)
    assert [line.start for line in lines] == [2.1, 4.2]
    assert all(len(line.text.split()) == 1 for line in lines)

    cut_in = Interval(8.0, 11.0)
    interruption = noise_scenario(
        "UserInterruption", 15.0, [(0.5, 5.0), (8.0, 11.0)], turn_end=5.0, interruption=cut_in
    )
    first, second = UserInterruption().reference_lines(interruption, partner)
    assert 5.2 <= first.start <= 5.5
    assert first.stop is not None and 8.0 + FRAME_S - 1e-9 <= first.stop <= 8.0 + 3 * FRAME_S
    assert 11.2 <= second.start <= 11.5 and second.stop is None


class RecordingPartner:
    """Answers with fixed words and delays and records the calls in order."""

    def __init__(self):
        self.calls = []

    def statement(self):
        self.calls.append("statement")
        return "so it goes"

    def backchannel(self):
        self.calls.append("backchannel")
        return "yeah"

    def reply_at(self, t):
        self.calls.append("reply_at")
        return t + 0.3

    def stop_at(self, t):
        self.calls.append("stop_at")
        return t + FRAME_S


def test_reference_lines_draw_in_the_order_of_the_cached_base():
    """Each call draws from the warm start's generator: another order changes the cached base."""
    cut_in = Interval(8.0, 11.0)
    interruption = noise_scenario(
        "UserInterruption", 15.0, [(0.5, 5.0), (8.0, 11.0)], turn_end=5.0, interruption=cut_in
    )
    partner = RecordingPartner()
    lines = UserInterruption().reference_lines(interruption, partner)
    expected = ["stop_at", "statement", "statement", "reply_at", "statement", "reply_at"]
    assert partner.calls == expected
    assert [(line.start, line.stop) for line in lines] == [(5.3, 8.0 + FRAME_S), (11.3, None)]
    assert lines[0].text == "so it goes so it goes"
    partner = RecordingPartner()
    turn = noise_scenario("TurnTaking", 9.0, [(0.5, 6.0)], turn_end=6.0)
    TurnTaking().reference_lines(turn, partner)
    assert partner.calls == ["statement", "reply_at"]


def test_an_axis_without_reference_lines_says_which_method_it_lacks():
    class Quiet(Axis):
        name = "Quiet"

        def synthesize(self, rng, scenario_id):
            raise NotImplementedError

        def score(self, episode):
            return AxisScore(terms={})

    config = WarmstartConfig()
    partner = WarmstartPartner(
        np.random.default_rng(0), config.reply_delay_s, config.stop_after_frames
    )
    scenario = noise_scenario("Quiet", 3.0, [(0.5, 2.0)])
    message = (
        r"axis Quiet defines no reference_lines\(scenario, partner\); "
        "implement it to warm-start a model on this axis"
    )
    with pytest.raises(NotImplementedError, match=message):
        Quiet().reference_lines(scenario, partner)


def test_user_codes_are_the_streaming_policy_codes(models):
    """Two envs played through MoshiPolicy, one longer than Mimi's 250-frame context."""
    scenarios = [
        noise_scenario("TurnTaking", 9.0, [(0.5, 3.0), (3.6, 6.0)], turn_end=6.0),
        noise_scenario("TurnTaking", 18.5, [(1.0, 8.0), (9.0, 17.0)], turn_end=17.0),
    ]
    streams = [make_stream(s, LEAD) for s in scenarios]
    frames = max(s.num_frames for s in streams)
    audio = np.zeros((2, frames * 1920), dtype=np.float32)
    for row, stream in enumerate(streams):
        audio[row, : len(stream.audio)] = stream.audio
    policy = MoshiPolicy(models)
    policy.start(2)
    for k in range(frames):
        policy.act(audio[:, k * 1920 : (k + 1) * 1920])
    policy.stop()
    played, _ = policy.sequences()

    dialogues = [make_dialogue(s, [], models.tokenizer, LEAD) for s in scenarios]
    for row, (codes, stream) in enumerate(
        zip(encode_dialogues(models.mimi, dialogues), streams, strict=True)
    ):
        assert codes.shape == (17, stream.num_frames - 1)
        torch.testing.assert_close(
            codes[9:], played[row, 9:, : stream.num_frames - 1], rtol=0, atol=0
        )


def test_loss_is_the_forward_pass_in_the_delayed_layout(models):
    """The text logits are ``lm(codes).text_logits``; the audio ones match it frame for frame."""
    lm = models.lm
    codes = torch.randint(0, 500, (2, 17, 12))
    codes[1, :, 9:] = -1
    with torch.no_grad():
        reference = lm(codes)
        sequence = delayed_codes(lm, codes)
        hidden, text_logits = lm.forward_text(sequence[:, :, :-1])
        audio_logits = lm.forward_depformer_training(sequence[:, :, 1:], hidden)
    mask = reference.text_mask[:, 0]
    assert int(mask.sum()) == 12 + 9
    torch.testing.assert_close(text_logits[:, 0][mask], reference.text_logits[:, 0][mask])
    for k, delay in enumerate(lm.delays[1:9]):
        valid = reference.mask[:, k, : 12 - delay]
        torch.testing.assert_close(
            audio_logits[:, k, delay:][valid], reference.logits[:, k, : 12 - delay][valid]
        )


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    models = tiny_models(seed=4)
    scenario = noise_scenario("TurnTaking", 5.0, [(0.5, 2.0)], turn_end=2.0)
    dialogue = make_dialogue(scenario, hand_lines(), models.tokenizer, LEAD)
    data = pad_sequences(encode_dialogues(models.mimi, [dialogue]))
    config = WarmstartConfig(steps=25, batch_size=2, warmup_steps=1)
    weights = torch.ones(models.text_card)
    weights[PAD_ID] = config.pad_weight

    def loss() -> tuple[float, float]:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            text, audio = warmstart_loss(models.lm, data, weights, 32, generator)
        return text.item(), audio.item()

    text_before, audio_before = loss()
    losses = train(models.lm, data, config)
    text_after, audio_after = loss()
    assert len(losses) == 25
    assert text_after < 0.5 * text_before and audio_after < audio_before


def test_base_is_cached_and_loads_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FDENV_CACHE", str(tmp_path))
    config = WarmstartConfig(scenarios_per_axis=1, steps=2, batch_size=2)
    built = tiny_base_models(config=config)
    assert base_path(config).is_file() and base_path(config).parent == tmp_path
    loaded = tiny_base_models(config=config)
    for module in ("lm", "mimi"):
        saved = getattr(built, module).state_dict()
        restored = getattr(loaded, module).state_dict()
        assert saved.keys() == restored.keys()
        for name, tensor in saved.items():
            torch.testing.assert_close(restored[name], tensor, rtol=0, atol=0)
    untrained = tiny_models(config.model_seed).lm.state_dict()
    assert any(not torch.equal(untrained[n], t) for n, t in built.lm.state_dict().items())
    assert WarmstartConfig(steps=3).key() != config.key() == WarmstartConfig(**vars(config)).key()


def test_evaluation_pairs_agents_on_the_same_held_out_episodes():
    agents = {"Silent": SilentAgent(100), "Rule": RuleAgent(word_id=100)}  # tiny vocab: 512
    results = evaluate(agents, episodes=2)
    assert set(results["Silent"]) == {
        "PauseHandling",
        "TurnTaking",
        "Backchannel",
        "UserInterruption",
    }
    assert (results["Silent"]["PauseHandling"] == 0).all()
    assert (results["Rule"]["TurnTaking"] > results["Silent"]["TurnTaking"]).all()
