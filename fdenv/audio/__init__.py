"""Audio at fdenv's edges: reading and resampling, speech synthesis, VAD and room acoustics."""
