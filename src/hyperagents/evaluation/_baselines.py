"""Baseline arms: what a user would run instead of self-improvement, on the same stages.

A baseline run draws the task agent's parameters from the space its *seed* declares
(``PARAMS``/``PARAM_SPACE``, see :mod:`hyperagents.tasks`) and writes them into a copy of the
seed; the child is then validated, evaluated in the same stages, pruned by the same pruner,
gated by the same constitution, and its champion chosen by val, exactly as a child of the
meta agent would be. Only where the child comes from differs:

* ``random``: independent uniform draws (log-uniform on a log scale);
* ``optuna-tpe``: Optuna's TPE sampler, told every earlier child's outcome;
* ``optuna-cmaes``: Optuna's CMA-ES sampler (choices and bools are drawn by its independent
  sampler, as Optuna does).

Nothing is kept in memory between children: each proposal rebuilds an Optuna study from the
trials the engine hands over (:class:`BaselineTrial`: the params, the outcome, and the
sampler's own trial attributes, stored with the child), so a resumed run proposes exactly what
the original would have. An outcome is the child's selected objective (its val score, less any
constitution penalty); a child pruned after its train subset is a pruned trial whose last
intermediate value is that score (TPE ranks such trials below the complete ones; CMA-ES uses
the value, ``consider_pruned_trials``); an invalid or failed child is a failed trial.

These run in the engine process: they are trusted code that only reads literals of the seed's
source and writes values into it, never running it. Optuna is the optional extra ``optuna``;
using an Optuna arm sets Optuna's own logger to warnings (a study is made per proposal, and its
"study created" lines would fill the output).
"""

from __future__ import annotations

import importlib.util
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hyperagents.exceptions import ConfigError
from hyperagents.improvers import ImproveRequest, ImproveResult
from hyperagents.program import Program
from hyperagents.tasks import DeclaredParam, DeclaredSpace, declared_space

if TYPE_CHECKING:
    import optuna

__all__ = [
    "BASELINES",
    "TASK_AGENT",
    "BaselineImprover",
    "BaselineTrial",
    "check_baseline",
    "propose",
]

#: The baseline arms: the name of each (a run mode) and what it needs installed.
BASELINES: dict[str, tuple[str, ...]] = {
    "random": (),
    "optuna-tpe": ("optuna",),
    "optuna-cmaes": ("optuna", "cmaes"),
}

#: The seed file whose declared space a baseline searches.
TASK_AGENT = "task_agent.py"

#: Trial attributes of Optuna's samplers kept with a child (CMA-ES's generation and state).
_KEPT_ATTRS = ("cma:",)

# CMA-ES is told pruned children (``consider_pruned_trials``), an argument Optuna marks
# experimental with a warning on every sampler made (one per child). Filtered once, here, for
# that message only: ``warnings.catch_warnings`` around each call is not thread-safe, and an
# experiment drives its runs from threads.
warnings.filterwarnings("ignore", message=r".*consider_pruned_trials.*")


@dataclass(frozen=True)
class BaselineTrial:
    """One earlier child as a sampler sees it.

    Attributes:
        params: The values it was given (the seed's own values for the seed).
        state: ``"complete"``, ``"pruned"`` or ``"failed"``.
        value: Its selected objective (complete), or its train-subset score (pruned).
        attrs: The sampler's attributes of its trial (Optuna's ``system_attrs``).
    """

    params: Mapping[str, Any]
    state: str
    value: float | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The trial as JSON (what the engine hands a baseline in its request)."""
        return {
            "params": dict(self.params),
            "state": self.state,
            "value": self.value,
            "attrs": dict(self.attrs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BaselineTrial:
        """The trial :meth:`to_json` wrote."""
        return cls(
            dict(data.get("params") or {}),
            str(data.get("state", "failed")),
            data.get("value"),
            dict(data.get("attrs") or {}),
        )


def check_baseline(name: str, program: Program | None = None) -> None:
    """Refuse a baseline that is unknown or whose packages are not installed, or a seed
    ``program`` it cannot search.

    Raises:
        ConfigError: Unknown name, a missing package (with the extra that installs it), or a
            seed whose ``task_agent.py`` declares no usable search space (each problem named).
    """
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of: {', '.join(BASELINES)}")
    missing = [pkg for pkg in BASELINES[name] if importlib.util.find_spec(pkg) is None]
    if missing:
        raise ConfigError(
            f"the {name} baseline needs {', '.join(missing)}: pip install 'hyperagents[optuna]'"
        )
    if program is None:
        return
    if TASK_AGENT not in program:
        raise ConfigError(f"the {name} baseline searches the seed's {TASK_AGENT}; it has none")
    try:
        source = program.text(TASK_AGENT)
    except UnicodeDecodeError:
        raise ConfigError(f"the seed's {TASK_AGENT} is not UTF-8 text") from None
    declared_space(source)


def propose(
    name: str, space: DeclaredSpace, trials: Sequence[BaselineTrial], *, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The next parameters baseline ``name`` proposes after ``trials``.

    Returns:
        The values of every searchable parameter, and the sampler's attributes to keep with
        the child (for :attr:`BaselineTrial.attrs`).

    Raises:
        ConfigError: Unknown baseline, or its packages missing.
    """
    check_baseline(name)
    if name == "random":
        return space.sample(random.Random(seed)), {}
    return _optuna_ask(name, space, trials, seed)


class BaselineImprover:
    """An :class:`~hyperagents.improvers.Improver` that writes a baseline's proposal into the
    seed program.

    The request's program is the seed's; its report carries the earlier trials
    (``report["trials"]``, a list of :meth:`BaselineTrial.to_json`).

    Args:
        name: The baseline (a key of :data:`BASELINES`).
    """

    def __init__(self, name: str) -> None:
        check_baseline(name)
        self.name = name

    def improve(self, request: ImproveRequest) -> ImproveResult:
        """Propose parameters and write them into the seed's ``task_agent.py``."""
        program = request.program
        if TASK_AGENT not in program:
            return ImproveResult(None, reason=f"the seed has no {TASK_AGENT} to search")
        try:
            source = program.text(TASK_AGENT)
            space = declared_space(source)
            raw = request.report.get("trials") or []
            trials = [BaselineTrial.from_json(t) for t in raw]
            params, attrs = propose(self.name, space, trials, seed=request.seed)
            child = program.with_files({TASK_AGENT: space.write(source, params)})
        except (ConfigError, UnicodeDecodeError) as exc:
            return ImproveResult(None, reason=f"{self.name}: {exc}")
        info = {"baseline": self.name, "params": params, "attrs": attrs}
        return ImproveResult(child, meta_info=info)


# -- Optuna --------------------------------------------------------------------------------
def _optuna_ask(
    name: str, space: DeclaredSpace, trials: Sequence[BaselineTrial], seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask a study rebuilt from ``trials`` for the next point."""
    import optuna

    # A study is made per proposal: Optuna's "new study created" lines would be printed for
    # every child. Its logger (its own, not the root's) keeps warnings and errors.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {p.name: _distribution(p) for p in space.params}
    study = optuna.create_study(direction="maximize", sampler=_sampler(name, seed))
    for trial in trials:
        frozen = _frozen(trial, space, distributions)
        if frozen is not None:
            study.add_trial(frozen)
    asked = study.ask(distributions)
    params = {p.name: _value(p, asked.params[p.name]) for p in space.params}
    attrs = study.get_trials(deepcopy=False)[-1].system_attrs
    kept = {k: v for k, v in attrs.items() if k.startswith(_KEPT_ATTRS)}
    return params, kept


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of baseline ``name``."""
    import optuna

    seed32 = seed % (2**32)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed32)
    return optuna.samplers.CmaEsSampler(
        seed=seed32,
        consider_pruned_trials=True,
        independent_sampler=optuna.samplers.RandomSampler(seed=seed32),
        warn_independent_sampling=False,
    )


def _distribution(param: DeclaredParam) -> optuna.distributions.BaseDistribution:
    """Optuna's distribution for one parameter (choices by index: any literal can be one)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if param.kind in ("choice", "bool"):
        return CategoricalDistribution(list(range(len(param.choices))))
    if param.kind == "int":
        low, high = int(-(-param.low // 1)), int(param.high // 1)
        return IntDistribution(low, high, log=param.log and low >= 1)
    return FloatDistribution(param.low, param.high, log=param.log)


def _value(param: DeclaredParam, raw: Any) -> Any:
    """The parameter value of Optuna's ``raw`` (a choice's index → the choice)."""
    if param.kind in ("choice", "bool"):
        return param.choices[int(raw)]
    if param.kind == "int":
        return int(raw)
    return float(raw)


def _internal(param: DeclaredParam, value: Any) -> Any:
    """Optuna's value of a parameter value (None: not a value of the parameter)."""
    if param.kind in ("choice", "bool"):
        for index, choice in enumerate(param.choices):
            if _same_literal(choice, value):
                return index
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if param.kind == "int":
        return int(value) if float(value).is_integer() else None
    return float(value)


def _same_literal(a: Any, b: Any) -> bool:
    """Whether two literals are equal as JSON keeps them (a tuple equals a list; 1 is not
    True)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_literal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _frozen(
    trial: BaselineTrial,
    space: DeclaredSpace,
    distributions: Mapping[str, optuna.distributions.BaseDistribution],
) -> optuna.trial.FrozenTrial | None:
    """``trial`` as an Optuna trial (None: its params do not fit the space)."""
    import optuna
    from optuna.trial import TrialState

    params: dict[str, Any] = {}
    for param in space.params:
        internal = _internal(param, trial.params.get(param.name))
        if internal is None:
            return None
        params[param.name] = internal
    state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(
        trial.state, TrialState.FAIL
    )
    value = trial.value
    if value is None:
        state = TrialState.FAIL
    intermediate = {0: value} if state is TrialState.PRUNED and value is not None else None
    if state is not TrialState.COMPLETE:
        value = None
    try:
        return optuna.trial.create_trial(
            state=state,
            value=value,
            params=params,
            distributions=dict(distributions),
            intermediate_values=intermediate,
            system_attrs=dict(trial.attrs),
        )
    except ValueError:  # a value outside its distribution
        return None
