"""Every spec of every unit, fast: a new unit's specs can be iterated on without a grading run.

Topics are discovered from ``lib/llmcourse/checks/*.py`` (a module that defines ``SPECS``), so a new
unit is covered the moment its spec module exists. For each spec:

- the reference passes its own visible cases and its hidden cases under several seeds (outputs are
  plain data, deterministic, and the spec's adapter works);
- the spec module builds every case with its answer key blocked, as the grading kernel does, and the
  cases it builds there are the very cases it builds here;
- hidden cases follow the seed; no case label spells out its inputs;
- names follow the rule in ``llmcourse/checks/__init__.py``; adapters take the case's inputs by name;
  the forbidden calls name real objects.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import llmcourse.checks
import pytest
from llmcourse.checks.checker import Case, Spec, compare_results, encode, expected_results, run_cases
from llmcourse.checks.forbidden import resolve_path

CHECKS = Path(llmcourse.checks.__file__).parent
TOPICS = sorted(p.stem for p in CHECKS.glob("*.py") if re.search(r"^SPECS\b", p.read_text(), re.M))
SEEDS = (0, 1, 2)


def specs_of(topic: str) -> list[Spec]:
    return importlib.import_module(f"llmcourse.checks.{topic}").SPECS


SPECS = {spec.name: spec for topic in TOPICS for spec in specs_of(topic)}


@cache
def cases(name: str, hidden: bool, seed: int = 0) -> list[Case]:
    return SPECS[name].cases(hidden, seed)


def fingerprint(case_list: list[Case]) -> str:
    """Inputs and labels of a list of cases, as one hash (tensors by dtype, shape and bytes)."""
    data = [[c.label, encode({"args": c.args, "kwargs": c.kwargs})] for c in case_list]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def test_every_topic_is_found():
    assert {"tokenization", "attention", "transformer"} <= set(TOPICS)
    assert len(SPECS) == sum(len(specs_of(t)) for t in TOPICS), "two specs share a name"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_reference_passes_its_own_cases(name):
    spec = SPECS[name]
    reference = spec.reference_fn()
    for hidden, seed in [(False, 0)] + [(True, s) for s in SEEDS]:
        case_list = cases(name, hidden, seed)
        assert case_list, f"{name}: no {'hidden' if hidden else 'visible'} cases"
        outcome = compare_results(
            spec, hidden, case_list, expected_results(spec, case_list), run_cases(reference, case_list, spec)
        )
        assert outcome.passed, outcome.report()


BUILD_BLOCKED = """
import hashlib, importlib, json, sys
from llmcourse.grading.kernel import AnswerKeyBlocker, install_blocker
from llmcourse.checks.checker import encode
out = {}
for topic, blocked in json.loads(sys.argv[1]).items():
    sys.modules.pop(f"llmcourse.checks.{topic}", None)  # built afresh, under this topic's blocker
    install_blocker(blocked)  # also drops the answer key from sys.modules
    module = importlib.import_module(f"llmcourse.checks.{topic}")
    prints = {}
    for spec in module.SPECS:
        for hidden, seed in [(False, 0)] + [(True, s) for s in json.loads(sys.argv[2])]:
            data = [[c.label, encode({"args": c.args, "kwargs": c.kwargs})] for c in spec.cases(hidden, seed)]
            prints[f"{spec.name} {hidden} {seed}"] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    loaded = [m for m in blocked if m in sys.modules]
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AnswerKeyBlocker)]
    out[topic] = {"prints": prints, "loaded": loaded}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def built_blocked() -> dict:
    """Every topic's cases built in one fresh interpreter, each topic under its own answer-key blocker
    (as its grading kernel runs): one start-up of torch for all units."""
    blocked = {t: sorted({spec.reference.split(":")[0] for spec in specs_of(t)}) for t in TOPICS}
    args = [json.dumps(blocked), json.dumps(SEEDS)]
    proc = subprocess.run([sys.executable, "-c", BUILD_BLOCKED, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"building cases needed an answer key:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("topic", TOPICS)
def test_cases_are_built_with_the_answer_key_blocked(topic, built_blocked):
    assert built_blocked[topic]["loaded"] == []
    here = {
        f"{spec.name} {hidden} {seed}": fingerprint(cases(spec.name, hidden, seed))
        for spec in specs_of(topic)
        for hidden, seed in [(False, 0)] + [(True, s) for s in SEEDS]
    }
    assert built_blocked[topic]["prints"] == here, "the cases differ when the answer key is blocked"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hidden_cases_follow_the_seed(name):
    assert fingerprint(cases(name, True, 1)) == fingerprint(SPECS[name].cases(True, 1)), "not reproducible"
    assert len({fingerprint(cases(name, True, s)) for s in SEEDS}) == len(SEEDS), "no random cases"
    assert fingerprint(cases(name, False)) == fingerprint(SPECS[name].cases(False, 99)), "visible cases use the seed"


NUMBER = re.compile(r"-?\d+(?:\.(\d+))?")


def leaves(x):
    """Every input value a case holds, looking into dicts, lists and tuples (int lists stay whole)."""
    if isinstance(x, dict):
        for k, v in x.items():
            if not (isinstance(k, str) and k.isidentifier()):  # a field name (config["n_embd"]) is no input
                yield from leaves(k)
            yield from leaves(v)
    elif isinstance(x, (list, tuple)) and not all(type(v) is int for v in x):
        for v in x:
            yield from leaves(v)
    else:
        yield x


def revealed(label: str, value) -> str | None:
    """How ``label`` spells out ``value``, or None: a string input of 8+ characters, or three
    consecutive numbers of an id list or tensor, at the precision the label prints them."""
    if isinstance(value, str):
        return value if len(value) >= 8 and value in label else None
    if isinstance(value, (list, tuple)):
        numbers = [float(v) for v in value]
    elif type(value).__module__ == "torch" and hasattr(value, "flatten"):
        numbers = value.detach().double().flatten()[:10_000].tolist()
    else:
        return None
    printed = [(float(m.group(0)), len(m.group(1) or "")) for m in NUMBER.finditer(label)]
    for i in range(len(printed) - 2):
        window = printed[i : i + 3]
        want = tuple(round(v, d) for v, d in window)
        for j in range(len(numbers) - 2):
            if tuple(round(numbers[j + k], window[k][1]) for k in range(3)) == want:
                return " ".join(str(v) for v, _ in window)
    return None


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_label_contains_its_inputs(name):
    """Feedback shows hidden labels (never hidden inputs), so a hidden label describes its case
    without spelling it out. Visible inputs are shown anyway: their labels only stay short."""
    for hidden, seed in [(False, 0), (True, 0), (True, 1)]:
        for i, case in enumerate(cases(name, hidden, seed)):
            where = f"{name} {'hidden' if hidden else 'visible'} case {i + 1} ({case.label!r})"
            assert 0 < len(case.label) <= 100, f"{where}: a label describes a case in a few words"
            if not hidden:
                continue
            for value in (leaf for given in [*case.args, *case.kwargs.values()] for leaf in leaves(given)):
                leak = revealed(case.label, value)
                assert leak is None, f"{where}: the label spells out an input ({leak!r})"


def snake(name: str) -> str:
    """MultiHeadAttention -> multi_head_attention, MLPLanguageModel -> mlp_language_model."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_names_follow_the_rule(name):
    """ "<topic>.<name>": the spec module, then the reference's function or class (as written or in
    snake_case) or the method of it that the part adds. See llmcourse/checks/__init__.py."""
    spec = SPECS[name]
    topic, _, what = name.partition(".")
    module, attr = spec.reference.split(":")
    assert module == f"llmcourse.{topic}", f"{name}: its reference lives in {module}, not llmcourse.{topic}"
    assert name in [s.name for s in specs_of(topic)]
    reference = spec.reference_fn()
    assert what in (attr, snake(attr)) or (inspect.isclass(reference) and callable(getattr(reference, what, None)))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_adapters_take_the_case_inputs_by_name(name):
    spec = SPECS[name]
    assert spec.call is None, f"{name}: use Spec.adapter (an explicit signature), not the older Spec.call"
    if spec.adapter is None:
        return
    params = inspect.signature(spec.adapter).parameters.values()
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params), (
        f"{name}: {spec.adapter.__name__}{inspect.signature(spec.adapter)} should name every input (no *args, **kwargs)"
    )
    for hidden in (False, True):
        for case in cases(name, hidden):
            inspect.signature(spec.adapter).bind(object(), *case.args, **case.kwargs)
            assert spec.call_repr(case).startswith(f"{spec.adapter.__name__}({spec.function_name}")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_forbidden_calls_name_real_objects(name):
    forbidden = SPECS[name].forbidden
    assert isinstance(forbidden, tuple) and len(set(forbidden)) == len(forbidden)
    for path in forbidden:
        installed = importlib.util.find_spec(path.split(".")[0]) is not None
        assert resolve_path(path) is not None or not installed, f"{name}: {path} names nothing"
