"""Task options: ``KEY=VALUE`` parsing, and a task class created with them by ``load_task``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperagents.exceptions import ConfigError, TaskError
from hyperagents.tasks import (
    Split,
    check_task_options,
    list_tasks,
    load_task,
    merge_task_options,
    parse_task_option,
    parse_task_options,
    stored_task_options,
    task_keywords,
    task_label,
)

TOY_FILE = Path(__file__).resolve().parents[1] / "toytask.py"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n=3", ("n", 3)),
        ("rate=0.5", ("rate", 0.5)),
        ("flag=true", ("flag", True)),
        ("none=null", ("none", None)),
        ("sizes=[12, 6, 6]", ("sizes", [12, 6, 6])),
        ('table={"a": 1}', ("table", {"a": 1})),
        ('quoted="3"', ("quoted", "3")),  # a JSON string: the way to say "a string of digits"
        ("name=demo", ("name", "demo")),  # not JSON: the string as given
        ("path=data/train.csv", ("path", "data/train.csv")),
        ("empty=", ("empty", "")),
        ("eq=a=b", ("eq", "a=b")),  # the first = separates
        (" spaced =x", ("spaced", "x")),
        ("nan=NaN", ("nan", "NaN")),  # not a finite number: kept as the string
        ("inf=-Infinity", ("inf", "-Infinity")),
    ],
)
def test_a_value_is_json_when_it_parses_else_the_string(
    text: str, expected: tuple[str, object]
) -> None:
    assert parse_task_option(text) == expected


@pytest.mark.parametrize("text", ["n", "=3", "1n=3", "a-b=3", "a.b=3", ""])
def test_a_malformed_option_names_itself(text: str) -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_task_option(text)


def test_options_in_order_and_a_key_given_twice_is_an_error() -> None:
    assert parse_task_options(["b=1", "a=x"]) == {"b": 1, "a": "x"}
    assert list(parse_task_options(["b=1", "a=x"])) == ["b", "a"]
    with pytest.raises(ConfigError, match="task option 'n' is given twice"):
        parse_task_options(["n=1", "n=2"])


def test_stored_options_are_what_a_json_round_trip_leaves() -> None:
    assert check_task_options({"sizes": (4, 2, 2), "t": {"a": (1,)}}) == {
        "sizes": [4, 2, 2],
        "t": {"a": [1]},
    }
    with pytest.raises(ConfigError, match=r"task option 'p': .* is not a JSON value"):
        check_task_options({"p": Path("/x")})
    with pytest.raises(ConfigError, match="task option 'x': nan is not a JSON value"):
        check_task_options({"x": float("nan")})
    with pytest.raises(ConfigError, match="must be a Python identifier"):
        check_task_options({"not a name": 1})


def test_options_given_go_over_the_config_files_key_by_key() -> None:
    config = {"task_options": {"n_train": 10, "seed": 1}}
    assert merge_task_options(config, {"seed": 2}) == {"n_train": 10, "seed": 2}
    assert merge_task_options(config, {}) is None  # the config's stay as they are
    assert merge_task_options({}, {"seed": 2}) == {"seed": 2}
    with pytest.raises(ConfigError, match=r"task_options: .* is not a mapping"):
        merge_task_options({"task_options": [1]}, {"seed": 2})


def test_a_label_shows_the_options_as_json() -> None:
    assert task_label("review", {}) == "review"
    assert task_label("review", None) == "review"
    shown = task_label("t.py:T", {"n": 3, "name": "x", "s": [1, 2]})
    assert shown == 't.py:T (n=3, name="x", s=[1,2])'
    long = task_label("live", {"train": list(range(100)), "o": {str(k): k for k in range(30)}})
    assert long == "live (train=[100 items], o={30 keys})"  # a label stays one short line
    assert stored_task_options({"task_options": {"n": 3}}) == {"n": 3}
    assert stored_task_options({}) == {}  # a run stored before there were options


def test_builtin_tasks_take_their_constructors_keywords() -> None:
    review = load_task("review", {"n_train": 12, "n_val": 5, "n_test": 5, "seed": 2})
    assert [len(review.instances(s)) for s in Split] == [12, 5, 5]
    again = load_task("review", {"n_train": 12, "n_val": 5, "n_test": 5, "seed": 2})
    assert [i.inputs for i in again.instances(Split.TRAIN)] == [
        i.inputs for i in review.instances(Split.TRAIN)
    ]
    other = load_task("review", {"n_train": 12, "n_val": 5, "n_test": 5, "seed": 3})
    assert [i.inputs for i in other.instances(Split.TRAIN)] != [
        i.inputs for i in review.instances(Split.TRAIN)
    ]
    support = load_task("support", {"n_train": 7})
    assert len(support.instances(Split.TRAIN)) == 7
    packing = load_task("packing", {"n_train": 2})
    assert len(packing.instances(Split.TRAIN)) == 2


def test_a_file_task_takes_options(tmp_path: Path) -> None:
    task = load_task(f"{TOY_FILE}:ToyTask", {"sizes": [6, 3, 2], "seed": 5})
    assert [len(task.instances(s)) for s in Split] == [6, 3, 2]


def test_an_unknown_option_is_named_with_those_the_class_takes() -> None:
    with pytest.raises(TaskError) as caught:
        load_task("review", {"n_trian": 3})
    message = str(caught.value)
    assert "task 'review' takes no option 'n_trian'" in message
    assert "did you mean 'n_train'?" in message
    assert "its options: n_test, n_train, n_val, seed" in message


def test_a_constructor_that_raises_is_reported_with_the_options(tmp_path: Path) -> None:
    with pytest.raises(TaskError) as caught:
        load_task("packing", {"n_train": 0})
    message = str(caught.value)
    assert "task 'packing' could not be created with n_train=0" in message
    assert "n_train must be an integer" in message


def test_a_keyword_the_class_needs_is_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "needs.py"
    path.write_text(
        "from toytask import ToyTask\n\n\n"
        "class Needs(ToyTask):\n"
        "    def __init__(self, *, data_file: str, **rest):\n"
        "        super().__init__(**rest)\n"
        "        self.data_file = data_file\n"
    )
    spec = f"{path}:Needs"
    with pytest.raises(TaskError, match="needs the option 'data_file'"):
        load_task(spec)
    task = load_task(spec, {"data_file": "d.csv", "seed": 1})
    assert task.data_file == "d.csv"  # type: ignore[attr-defined]
    with pytest.raises(TaskError, match="could not be created with data_file"):
        load_task(spec, {"data_file": "d.csv", "nope": 1})  # **rest: the constructor says no


def test_options_for_a_task_object_are_refused() -> None:
    task = load_task("review")
    assert load_task(task) is task
    assert load_task(task, {}) is task
    with pytest.raises(TaskError, match=r"task options \(n_train=3\) need a task spec"):
        load_task(task, {"n_train": 3})


def test_the_registry_lists_each_tasks_options() -> None:
    infos = {info.name: info for info in list_tasks()}
    assert infos["review"].options == "seed=0, n_train=400, n_val=200, n_test=200"
    assert infos["packing"].options == "seed=0, n_train=4, n_val=3, n_test=3"

    class Needs:
        def __init__(self, data: str, *, rate: float = 0.5, **rest: object) -> None: ...

    assert task_keywords(Needs) == "data, rate=0.5, ..."
