"""Where an environment's scenarios come from, and how one is drawn per episode.

The sampler holds the env's axis objects: scenarios carry their axis by name (manifests, ids),
and the name is resolved here, against the axes the env was given, never the global registry,
so a configured axis (``UserInterruption(min_response_s=1.0)``) is the one that scores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from fdenv.audio.acoustics import Acoustics, augment
from fdenv.axes import Axis
from fdenv.manifest import Manifest
from fdenv.scenario import Scenario
from fdenv.scenarios.synthetic import SyntheticScenarios


@runtime_checkable
class ScenarioSource(Protocol):
    """An indexable set of scenarios whose axes and ids are known without loading audio."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Scenario: ...
    def axis_of(self, index: int) -> str: ...
    def id_of(self, index: int) -> str: ...


class ScenarioList:
    """Scenarios held in memory (checked by the sampler against its axes)."""

    def __init__(self, scenarios: Sequence[Scenario]) -> None:
        self._scenarios = list(scenarios)

    def __len__(self) -> int:
        return len(self._scenarios)

    def __getitem__(self, index: int) -> Scenario:
        return self._scenarios[index]

    def axis_of(self, index: int) -> str:
        return self._scenarios[index].axis

    def id_of(self, index: int) -> str:
        return self._scenarios[index].id


ScenariosArg = str | Path | Sequence[Scenario] | ScenarioSource | None


class ScenarioSampler:
    """Draws an axis (uniformly, or in proportion to ``axis_weights``), then one of its
    scenarios uniformly, then room acoustics.

    ``scenarios`` is a manifest path, a list of scenarios, any :class:`ScenarioSource`, or
    ``None`` for the embedded synthetic scenarios (``num_scenarios`` per axis, from
    ``scenario_seed``; use another seed for a held-out set). ``axis_weights`` maps axis names
    to relative weights (missing axes weigh 1), to train more on a hard axis.
    """

    def __init__(
        self,
        axes: list[Axis],
        scenarios: ScenariosArg = None,
        *,
        num_scenarios: int = 64,
        scenario_seed: int = 0,
        acoustics: Acoustics | None = None,
        axis_weights: Mapping[str, float] | None = None,
    ) -> None:
        self.acoustics = acoustics
        self.specs: dict[str, Axis] = {a.name: a for a in axes}
        if len(self.specs) != len(axes):
            raise ValueError(f"two of the axes {axes} have the same name")
        if len({a.closed_loop for a in axes}) > 1:
            raise ValueError(
                f"the axes {[a.name for a in axes]} mix replayed and closed-loop axes; an env "
                "plays one kind (make one env per kind)"
            )
        if acoustics is not None and any(a.closed_loop for a in axes):
            raise ValueError(
                "acoustics are applied to recorded user channels; closed-loop axes synthesise "
                "their user as it speaks and take none (set acoustics=None)"
            )
        self._choices: dict[str, list[tuple[ScenarioSource, int]]] = {}
        for source in self._sources(axes, scenarios, num_scenarios, scenario_seed):
            for index in range(len(source)):
                axis = source.axis_of(index)
                if axis not in self.specs:
                    continue  # a set may hold other axes' scenarios; this env does not play them
                if isinstance(source, ScenarioList):
                    self._check(source[index])
                self._choices.setdefault(axis, []).append((source, index))
        wanted = [a.name for a in axes]
        missing = [name for name in wanted if name not in self._choices]
        if len(axes) == 1 and missing:
            raise ValueError(f"no scenarios of axis {missing[0]!r} in {scenarios}")
        self.axes = [name for name in wanted if name in self._choices]
        if not self.axes:
            raise ValueError(f"none of the axes {wanted} has scenarios in {scenarios}")
        self._probabilities = _axis_probabilities(self.axes, axis_weights)
        self._index: dict[str, tuple[ScenarioSource, int]] | None = None  # id -> where, on demand

    @staticmethod
    def _sources(
        axes: list[Axis], scenarios: ScenariosArg, num_scenarios: int, seed: int
    ) -> list[ScenarioSource]:
        if scenarios is None:
            return [SyntheticScenarios(a, num_scenarios, seed) for a in axes]
        if isinstance(scenarios, (str, Path)):
            return [Manifest(scenarios)]
        if isinstance(scenarios, ScenarioSource):
            return [scenarios]
        return [ScenarioList(scenarios)]

    def sample(self, rng: np.random.Generator, options: dict | None = None) -> Scenario:
        """The next episode's scenario; ``options["scenario"]`` (a Scenario or an id) pins it,
        ``options["axis"]`` (a name) draws it from that axis instead of drawing the axis."""
        options = options or {}
        pinned = options.get("scenario")
        if isinstance(pinned, Scenario):
            scenario = self._check(pinned)
        elif pinned is not None:
            scenario = self._by_id(str(pinned))
        else:
            axis = self._pinned_axis(options["axis"]) if "axis" in options else self._draw_axis(rng)
            source, index = self._choices[axis][rng.integers(len(self._choices[axis]))]
            scenario = source[index]
        if self.acoustics is None:
            return scenario
        audio, applied = augment(scenario.audio, scenario.user_speech, self.acoustics, rng)
        return dataclasses.replace(
            scenario, audio=audio, source=scenario.source | {"acoustics": applied}
        )

    def spec(self, axis: str) -> Axis:
        """The env's axis object called ``axis`` (the one that scores its scenarios)."""
        try:
            return self.specs[axis]
        except KeyError:
            raise ValueError(
                f"a scenario of axis {axis!r} is not playable here; this env's axes are "
                f"{list(self.specs)}"
            ) from None

    def _check(self, scenario: Scenario) -> Scenario:
        """``scenario``, validated by the env's own axis of its name."""
        self.spec(scenario.axis).validate(scenario)
        return scenario

    def balanced_axes(self, count: int, rng: np.random.Generator) -> list[str]:
        """``count`` axes, each axis ``floor`` or ``ceil`` of its share ``count * p`` times
        (systematic sampling over a shuffled axis order), in a random order. Independent draws
        leave a batch of a few groups lopsided by chance (4 groups over 4 axes miss an axis
        91% of the time); this keeps every batch's mix at the weights, with the same mean."""
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
            raise ValueError(f"count must be an int >= 1, got {count!r}")
        order = rng.permutation(len(self.axes))
        p = self._probabilities
        edges = np.cumsum(p[order] if p is not None else np.ones(len(order)) / len(order))
        points = (rng.random() + np.arange(count)) / count
        picks = order[np.minimum(np.searchsorted(edges, points, side="right"), len(order) - 1)]
        return [self.axes[i] for i in rng.permutation(picks)]

    def _pinned_axis(self, axis: object) -> str:
        if not isinstance(axis, str) or axis not in self._choices:
            raise ValueError(
                f"options['axis'] must name one of this env's axes with scenarios "
                f"{self.axes}, got {axis!r}"
            )
        return axis

    def _draw_axis(self, rng: np.random.Generator) -> str:
        if len(self.axes) == 1:
            return self.axes[0]
        if self._probabilities is None:
            return self.axes[rng.integers(len(self.axes))]
        return self.axes[rng.choice(len(self.axes), p=self._probabilities)]

    def ids(self, axis: str) -> list[str]:
        """The ids of this sampler's scenarios of ``axis``, in a fixed order."""
        return [source.id_of(index) for source, index in self._choices.get(axis, [])]

    def _by_id(self, scenario_id: str) -> Scenario:
        if self._index is None:
            self._index = {
                source.id_of(index): (source, index)
                for choices in self._choices.values()
                for source, index in choices
            }
        if scenario_id not in self._index:
            raise ValueError(
                f"options['scenario']: no scenario with id {scenario_id!r} among this env's "
                f"axes {list(self.specs)}"
            )
        source, index = self._index[scenario_id]
        return source[index]


def _axis_probabilities(axes: list[str], weights: Mapping[str, float] | None) -> np.ndarray | None:
    """Normalised axis weights (``None``: uniform); a ``ValueError`` names a bad entry."""
    if weights is None:
        return None
    unknown = sorted(set(weights) - set(axes))
    if unknown:
        raise ValueError(f"axis_weights names {unknown}, not among the axes {axes}")
    values = np.array([float(weights.get(a, 1.0)) for a in axes])
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.sum() <= 0:
        raise ValueError(f"axis_weights must be finite, >= 0 and not all 0, got {dict(weights)}")
    return values / values.sum()
