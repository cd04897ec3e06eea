"""HistogramTracker.from_state on hostile states: every field checked, nothing crashes."""

from __future__ import annotations

import copy
import json
import textwrap

import numpy as np
import pytest
from _hist_cases import CASES, sample
from _util import run_python

import qdq


def _state(axis=1, case="float32", shape=(6, 3), bins=16):
    rng = np.random.default_rng(3)
    x, b = sample(case, int(np.prod(shape)), rng, specials=False, shape=shape)
    x.flat[0] = np.inf if case != "bfloat16_bits" else 0x7F80  # one +inf (bfloat16 bits 0x7f80)
    return json.loads(json.dumps(qdq.HistogramTracker(axis, bins=bins, bfloat16_bits=b)
                                 .update(x).state_dict()))


def test_states_of_real_trackers_are_accepted():
    rng = np.random.default_rng(0)
    for case in CASES:
        for axis in (None, 0, 1, -1):
            x, b = sample(case, 600, rng, shape=(200, 3))
            t = qdq.HistogramTracker(axis, bins=64, bfloat16_bits=b)
            for part in np.array_split(x, 3):
                state = json.loads(json.dumps(t.update(part).state_dict()))
                assert qdq.HistogramTracker.from_state(state).state_dict() == state
    corners = [[np.nan], [np.inf], [-np.inf, np.inf], [-0.0], [0.0, -0.0], [65504.0, -65504.0],
               [np.inf, 3.0], []]
    for vals in corners:
        for axis in (None, 0):
            for dt in (np.float16, np.float64):
                t = qdq.HistogramTracker(axis, bins=16).update(np.array(vals, dt))
                qdq.HistogramTracker.from_state(t.state_dict())


# The crash of issue 24 item 1: lists shorter than the channels reached the kernel.
@pytest.mark.parametrize("field", ["special", "min", "max", "k", "counts"])
def test_short_lists_are_refused_before_the_kernel(field):
    state = _state()
    state[field] = state[field][:1]
    with pytest.raises(ValueError, match=f"HistogramTracker state: {field}"):
        qdq.HistogramTracker.from_state(state)


_EDITS = [
    ("k", [-150, -149, -149]), ("k", [126, 126, 126]), ("k", [10 ** 30] * 3),
    ("k", [-149.0] * 3), ("k", [True] * 3), ("k", "abc"), ("k", None),
    ("special", [[0, -1, 0]] * 3), ("special", [[0, 0]] * 3), ("special", [[0, 0, 2 ** 64]] * 3),
    ("special", [[0, 0, 0.5]] * 3), ("special", [None] * 3),
    ("counts", [{"-1": 1}, {}, {}]), ("counts", [{"16": 1}, {}, {}]),
    ("counts", [{"a": 1}, {}, {}]), ("counts", [{"05": 1}, {}, {}]),
    ("counts", [{"\u0665": 1}, {}, {}]), ("counts", [{"5": -1}, {}, {}]),
    ("counts", [{"5": 1.5}, {}, {}]), ("counts", [{"5": 2 ** 64}, {}, {}]),
    ("counts", [[1], {}, {}]), ("counts", {}),
    ("min", ["zz"] * 3), ("min", [1.0] * 3), ("min", ["nan"] * 3), ("min", ["0x1p-200"] * 3),
    ("max", ["-inf"] * 3), ("max", ["0x1p1000"] * 3),
    ("bins", 15), ("bins", 16.0), ("bins", "16"), ("bins", 1 << 30),
    ("axis", "1"), ("axis", 5), ("axis", 1.0), ("bfloat16_bits", "no"),
    ("count", -1), ("count", 1.5), ("count", 19), ("count", True),
    ("format", "int8"), ("format", 5), ("format", "float16"), ("format", "<f4"),
    ("dtype", 5), ("dtype", ">f4"), ("dtype", "<f8"), ("dtype", "zz"), ("dtype", "bfloat16"),
    ("rest", "ab"), ("rest", [-3]), ("rest", [4]), ("rest", [3.0]), ("rest", [1] * 64),
    ("ax", 0), ("ax", None), ("ax", True), ("ax", "1"),
    ("qdq_histogram_tracker", 2),
] + [(f, ...) for f in ("axis", "bins", "bfloat16_bits", "count", "format", "dtype", "rest",
                        "ax", "k", "counts", "special", "min", "max")]


@pytest.mark.parametrize("field, value", _EDITS, ids=repr)
def test_from_state_checks_every_field(field, value):
    state = _state()
    if value is ...:
        del state[field]
    else:
        state[field] = value
    name = "HistogramTracker state" if field != "qdq_histogram_tracker" else "not a Histogram"
    with pytest.raises(ValueError, match=name) as info:
        qdq.HistogramTracker.from_state(state)
    assert field in str(info.value) or field == "qdq_histogram_tracker"


def test_fields_are_checked_against_each_other():
    state = qdq.HistogramTracker(bins=16).update(np.float32([-3, 0.5, 2, 7])).state_dict()
    assert state["k"] == [0]
    for field, value in [("min", ["-0x1p2"]),   # -4 is below the lowest bin counted (-3)
                         ("max", ["0x1p1"]),    # 2 is not in the highest bin counted (7)
                         ("k", [1]),            # not the exponent of min and max
                         ("special", [[0, 1, 0]]),  # +inf counted, max is not inf
                         ("counts", [{"5": 1, "8": 1, "10": 1, "12": 1}])]:  # 7 is not in bin 4
        bad = dict(state, **{field: value})
        with pytest.raises(ValueError, match=f"HistogramTracker state: .*{field}"):
            qdq.HistogramTracker.from_state(bad)
    empty = qdq.HistogramTracker(bins=16).update(np.float32([np.nan])).state_dict()
    for field, value in [("k", [0]), ("min", ["0x1p0"])]:
        with pytest.raises(ValueError, match="HistogramTracker state"):
            qdq.HistogramTracker.from_state(dict(empty, **{field: value}))
    without = {k: v for k, v in state.items() if k not in ("format",)}
    with pytest.raises(ValueError, match="format"):
        qdq.HistogramTracker.from_state(without)


_FUZZ = textwrap.dedent("""
    import json, random, sys
    import numpy as np, qdq
    states = json.loads(sys.stdin.read())
    rng = random.Random(int(sys.argv[1]))
    BAD = [None, True, -1, 0, 1, 2 ** 64, 2 ** 70, -2 ** 70, 1.5, float("nan"), "x", "-1",
           "0x1p0", "inf", "-inf", "0", "99999", [], {}, [0], [0, 0, 0], [[0, 0, 0]], {"0": 1},
           {"-1": 1}, {"65536": 2 ** 63}]

    def mutate(node, depth=0):
        # one random edit somewhere in the tree: delete, replace, truncate, extend
        if isinstance(node, dict) and node and (depth == 0 or rng.random() < 0.7):
            key = rng.choice(list(node))
            r = rng.random()
            if r < 0.15 and depth == 0:
                del node[key]
            elif r < 0.5 or not isinstance(node[key], (dict, list)):
                node[key] = rng.choice(BAD)
            else:
                mutate(node[key], depth + 1)
        elif isinstance(node, list) and node:
            r = rng.random()
            if r < 0.2:
                del node[rng.randrange(len(node)):]
            elif r < 0.3:
                node.append(rng.choice(BAD))
            else:
                i = rng.randrange(len(node))
                if isinstance(node[i], (dict, list)) and rng.random() < 0.5:
                    mutate(node[i], depth + 1)
                else:
                    node[i] = rng.choice(BAD)
        elif isinstance(node, dict):
            node[rng.choice(["0", "15", "16", "-1"])] = rng.choice(BAD)

    accepted = refused = 0
    for i in range(int(sys.argv[2])):
        base = rng.choice(states)
        state = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            mutate(state)
        try:
            t = qdq.HistogramTracker.from_state(state)
        except ValueError:
            refused += 1
            continue
        accepted += 1
        # an accepted state is a state: it updates, merges and gives ranges like one
        x = np.zeros([4] + list(t._rest), t.dtype) if t.dtype is not None else np.zeros(4)
        for chunk in (x, x + 1000, x - 3):
            try:
                t.update(chunk)
            except (TypeError, ValueError):
                pass
        if t.dtype is not None and t.count:
            t.range("minmax"); t.range("percentile"); t.range("mse")
        qdq.HistogramTracker.from_state(json.loads(json.dumps(t.state_dict())))
    print(accepted, refused)
""")


def test_corrupted_states_never_crash(tmp_path):
    """Random edits of real states: ValueError or a working tracker, never a crash."""
    states = [_state(axis, case, bins=bins) for axis in (None, 0, 1)
              for case in ("float16", "float32", "float64", "bfloat16_bits") for bins in (16, 18)]
    res = run_python(["-c", _FUZZ, "7", "20000"], cwd=tmp_path, input=json.dumps(states),
                     timeout=600)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr[-3000:])
    accepted, refused = map(int, res.stdout.split())
    assert accepted > 0 and refused > 19000


def test_every_truncation_and_retype_is_refused():
    """Each list field cut short, each field given each wrong type: a ValueError, in process."""
    base = _state(axis=1, case="float16")
    wrong = [None, True, 1.5, "x", [], {}, -1]
    n = 0
    for field in base:
        value = base[field]
        edits = [w for w in wrong if (type(w) is not type(value) or w != value)
                 and (field, w) != ("axis", -1)]  # (axis -1 is axis 1 here)
        if isinstance(value, list):
            edits += [value[:i] for i in range(len(value))]
        for edit in edits:
            state = copy.deepcopy(base)
            state[field] = edit
            try:
                qdq.HistogramTracker.from_state(state)
            except ValueError:
                n += 1
                continue
            pytest.fail(f"{field}={edit!r} accepted")
    assert n > 50
