"""Full-Duplex-Bench v1 in fdenv's terms: its metric rules (:mod:`~fdenv.fdbench.metrics`),
its ASR JSON (:mod:`~fdenv.fdbench.asr_json`), its sample folders as scenarios
(:mod:`~fdenv.fdbench.samples`), output folders scored the official way
(:mod:`~fdenv.fdbench.score`) and an agent's outputs written for the official scripts
(:mod:`~fdenv.fdbench.export`).

The package imports nothing itself: the axes use its metrics, and its sample reader uses the
axes, so each module is imported by name.
"""
