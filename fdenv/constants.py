"""Numbers fixed by Moshi and its Mimi codec, shared by every part of fdenv."""

SAMPLE_RATE = 24_000
"""Audio inside fdenv is mono float32 at Mimi's rate."""

FRAME_SIZE = 1_920
"""Samples per Mimi frame: 80 ms at 24 kHz, the step of every environment."""

FRAME_S = FRAME_SIZE / SAMPLE_RATE
"""Seconds per frame (0.08)."""

NUM_CODEBOOKS = 8
"""Audio codebooks Moshi generates per frame (of Mimi's 32)."""

TEXT_CARD = 32_000
"""Moshi's text vocabulary (SentencePiece ``tokenizer_spm_32k_3``)."""

AUDIO_CARD = 2_048
"""Entries per Mimi codebook."""

PAD_ID = 3
"""Text padding token: the model says nothing new in this frame."""

EPAD_ID = 0
"""End-of-padding token, emitted just before a word."""

DEFAULT_LEAD_IN_S = 3.0
"""Silence played before each scenario so Moshi can say its opening phrase (the paper's setting)."""
