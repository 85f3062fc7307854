"""The one rule every comparison uses: rank test, Hodges-Lehmann ratio and its interval, the
fastest samples as a check, step detection."""

import random

import pytest

from imgload import verdict

# Sample multipliers measured on this kind of machine under ../shared/tools/cpu-noise
# (a CPU-bound loop, 40 samples, each divided by the fastest): a quarter of the samples
# run undisturbed, the rest up to 2.5x slower.
BUSY = [
    1.00,
    1.00,
    1.00,
    1.00,
    1.00,
    1.00,
    1.00,
    1.01,
    1.02,
    1.03,
    1.04,
    1.05,
    1.11,
    1.14,
    1.20,
    1.20,
    1.20,
    1.24,
    1.27,
    1.30,
    1.33,
    1.45,
    1.48,
    1.62,
    1.70,
    1.80,
    1.83,
    1.85,
    1.99,
    2.01,
    2.04,
    2.04,
    2.04,
    2.10,
    2.15,
    2.26,
    2.31,
    2.35,
    2.47,
    2.56,
]


def _draw(rng, cost, n, noise):
    return [cost * (rng.choice(BUSY) if noise else 1 + 0.02 * rng.random()) for _ in range(n)]


def test_six_and_six_samples_can_never_pass_the_rank_test_so_seven_is_the_minimum():
    assert verdict.smallest_p(6, 6) > verdict.P_THRESHOLD > verdict.smallest_p(7, 7)
    assert verdict.min_samples() == 7
    # even completely separated samples: too few, never "within the noise"
    c = verdict.compare([1.0, 1.01, 1.02, 1.03, 1.04, 1.05], [2.0, 2.01, 2.02, 2.03, 2.04, 2.05])
    assert (
        c.outcome == verdict.FEW and "too few samples" in c.reason() and "at least 7" in c.reason()
    )


def test_quiet_samples_a_real_step_a_small_difference_and_no_difference():
    rng = random.Random(1)
    a = _draw(rng, 10.0, 12, False)
    step = verdict.compare(a, _draw(rng, 17.0, 12, False))
    assert step.outcome == verdict.STEP and step.slower and 1.6 < step.ratio < 1.8
    assert step.low > 1 and step.p < verdict.P_THRESHOLD and "1.7" in step.reason()
    faster = verdict.compare(a, _draw(rng, 5.9, 12, False))
    assert faster.outcome == verdict.STEP and not faster.slower and "faster" in faster.reason()
    small = verdict.compare(a, _draw(rng, 10.5, 12, False))  # apart, but below the 1.1x threshold
    assert small.outcome == verdict.NONE and small.p < verdict.P_THRESHOLD
    assert (
        "the samples differ" in small.reason() and "less than the 1.1x threshold" in small.reason()
    )
    flat = verdict.compare(a, _draw(rng, 10.0, 12, False))
    assert flat.outcome == verdict.NONE and 1 / 1.1 < flat.low <= flat.high < 1.1


def test_heavy_noise_is_too_noisy_with_few_samples_never_a_step_and_decides_with_more():
    rng = random.Random(2)
    outcomes = {
        n: [
            verdict.compare(_draw(rng, 10.0, n, True), _draw(rng, 10.0, n, True)).outcome
            for _ in range(200)
        ]
        for n in (12, 72)
    }
    assert verdict.STEP not in outcomes[12] + outcomes[72]
    assert outcomes[12].count(verdict.NOISY) > 100  # 12 busy samples cannot rule out 1.1x ...
    assert outcomes[72].count(verdict.NONE) > 190  # ... 72, make find's most, can
    noisy = verdict.compare(_draw(rng, 10.0, 12, True), _draw(rng, 10.0, 12, True))
    if noisy.outcome == verdict.NOISY:
        assert "too noisy to decide" in noisy.reason() and "IQR / median" in noisy.reason()
    real = [
        verdict.compare(_draw(rng, 10.0, 36, True), _draw(rng, 17.0, 36, True)).outcome
        for _ in range(200)
    ]
    assert real.count(verdict.STEP) > 190 and verdict.NONE not in real


def test_interference_on_one_side_only_is_not_a_step():
    """A release measured while the machine was busy is slower in every statistic but its
    fastest samples: the rank test alone would call it a step."""
    rng = random.Random(3)
    quiet = _draw(rng, 10.0, 24, False)
    busy = [10.0 * m for m in sorted(BUSY)[:4]] + [10.0 * rng.uniform(1.3, 2.5) for _ in range(20)]
    c = verdict.compare(quiet, busy)
    assert c.p < verdict.P_THRESHOLD and c.ratio > 1.1 and c.low > 1  # the rank test is fooled ...
    assert (
        c.outcome == verdict.NOISY and "the machine was busier while one release ran" in c.reason()
    )  # ... not the verdict


def _two_level_machine(rng, cost, n, fast_share):
    """This VM under cpu-noise: a CPU-bound loop runs at two speeds, about 27 ms while the other
    core is idle and 32 ms while it is busy, a level holding for a whole round (one process, 2
    samples here), with the usual interference on top."""
    out = []
    while len(out) < n:
        level = 1.0 if rng.random() < fast_share else 1.18
        out += [
            cost * level * (rng.choice(BUSY) if rng.random() < 0.4 else 1 + 0.02 * rng.random())
            for _ in range(2)
        ]
    return out[:n]


def test_identical_releases_on_a_two_level_machine_are_no_step_though_their_fastest_samples_differ():  # noqa: E501
    """What kept the fastest-sample statistic from saying "no step" on a flat benchmark: one
    release met the idle neighbour more often than the other, so its fastest samples were
    faster (seen: 0.92x after 72 + 72 samples). The Hodges-Lehmann ratio rests on all of them."""
    rng = random.Random(4)
    slow = [27.0 * 1.18 * (1 + 0.02 * rng.random()) for _ in range(130)]
    fast = [27.0 * (1 + 0.02 * rng.random()) for _ in range(14)]
    flat = verdict.compare(
        slow[:72], slow[72:] + fast[:2]
    )  # the fast level met by one release only, twice
    assert (
        flat.fastest < 0.9
        and flat.outcome == verdict.NONE
        and 1 / 1.1 < flat.low <= flat.high < 1.1
    )
    outcomes = [
        verdict.compare(
            _two_level_machine(rng, 10.0, 72, 0.2), _two_level_machine(rng, 10.0, 72, 0.2)
        ).outcome
        for _ in range(200)
    ]
    assert verdict.STEP not in outcomes and outcomes.count(verdict.NONE) > 180
    real = [
        verdict.compare(
            _two_level_machine(rng, 10.0, 24, 0.2), _two_level_machine(rng, 17.0, 24, 0.2)
        ).outcome
        for _ in range(200)
    ]
    assert real.count(verdict.STEP) > 190 and verdict.NONE not in real


@pytest.mark.parametrize("n, m", [(7, 7), (8, 12), (20, 20), (21, 30), (72, 72)])
def test_the_ratio_interval_covers_the_true_ratio_at_its_level(n, m):
    """The rank test's interval for a shift of log-times: exact up to 20 samples a side, normal
    beyond; checked by drawing both sides from one skewed distribution, b scaled by 1.3."""
    rng = random.Random(n * 100 + m)
    misses = 0
    for _ in range(600):
        a = [rng.lognormvariate(0, 0.3) for _ in range(n)]
        b = [1.3 * rng.lognormvariate(0, 0.3) for _ in range(m)]
        _, low, high = verdict.typical_ratio(a, b)
        misses += not low <= 1.3 <= high
    assert misses <= 14  # 1% expected, 6 in 600; more than 14 has a chance of 1 in 1000
    assert verdict.interval_rank(n, m) >= 1


@pytest.mark.parametrize(
    "values, invert, expected",
    [
        ([10, 10.2, 9.9, 10, 10.1, 17, 17.2, 16.9], False, [(5, False)]),
        ([4.1, 4.2, 4.0, 4.15, 4.1, 4.2, 2.4, 2.5, 2.4, 2.45], True, [(6, False)]),
        (
            [4.1, 4.2, 4.0, 4.15, 4.1, 4.2, 2.4, 2.5, 2.4, 2.45],
            False,
            [],
        ),  # a speedup is not a slowdown
        (
            [10, 10.1, 9.9, 30, 10, 9.9, 10.1, 10, 10.2],
            False,
            [(3, True)],
        ),  # one rung out of line: lone
        ([10, 10, 10, 40], False, [(3, False)]),  # the newest release: a step, nothing after it
        ([10, None, 10.1, 9.9, 17, None, 17.1], False, [(4, False)]),  # missing rungs are skipped
        ([10, 10.1, 9.9, 10, 10.05], False, []),
        # a short ladder with a spike (fastest stored samples of the probe ladder on a busy
        # machine): asv's fit sees one level here; neighbouring rungs 1.1x apart are candidates too
        ([29.1, 27.8, 67.6, 27.6, 32.7, 51.4, 55.4], False, [(2, True), (5, False), (4, False)]),
        # the OpenCV ladder as stored beside a busy neighbour: 4.10.0.84's 88 ms was the noise
        (
            [74.2, 74.7, 75.8, 76.8, 75.6, 76.6, 44.2, 88.4, 43.3, 46.3, 43.0, 41.5, 42.6, 44.6],
            True,
            [(8, False), (6, True)],
        ),
    ],
)
def test_ladder_steps_finds_level_changes_with_asv_step_detection(values, invert, expected):
    found = verdict.ladder_steps(values, invert)
    assert [(c.at, c.lone) for c in found] == expected


def test_ladder_steps_orders_the_largest_first():
    found = verdict.ladder_steps([10, 10, 10, 13, 13, 13, 40, 40, 40])
    assert [c.at for c in found] == [6, 3] and found[0].ratio == pytest.approx(40 / 13)


def _processes(*levels, jitter=0.004, size=4):
    """Samples as asv stores them: each process's `size` samples in turn, each process at its
    own speed level (this VM on a quiet day: one process 42.7 ms, the next 57.5 ms)."""
    return [level * (1 + jitter * k) for level in levels for k in range(size)]


def test_samples_split_back_into_the_processes_that_took_them():
    s = _processes(1.0, 2.0, 3.0)
    groups = verdict.per_process(s, 4)
    assert [len(g) for g in groups] == [4, 4, 4] and groups[1][0] == 2.0
    assert verdict.per_process(s, 5) is None  # 12 samples are not processes of 5
    assert verdict.per_process(s[:4], 4) is None  # one process: nothing to pair
    assert verdict.per_process(s, None) is None
    assert verdict.process_spread(groups) == pytest.approx(3.0 * 1.004**1.5 / (1.0 * 1.004**1.5))
    assert verdict.process_floor([1.0, 1.1, 1.2, 1.3, 1.4], 0.5) == pytest.approx(1.2)
    assert verdict.process_floor([]) == 1.0


def test_a_difference_one_process_apart_is_no_step_when_processes_of_one_side_differ_as_much():
    """8 + 8 samples from 2 + 2 processes: every sample of b is slower than every sample of a, so
    the rank test and the fastest samples agree (1.25x, the step the report used to mark). But
    b's own two processes are 1.28x apart, and the run's processes differ by up to 1.3x: the
    difference is no larger than what two processes of the same stack show."""
    a, b = _processes(10.0, 10.1), _processes(12.5, 16.0)
    samples_only = verdict.compare(a, b)
    assert samples_only.outcome == verdict.STEP  # what the samples alone say: this test can fail
    c = verdict.compare(a, b, process_size=4, floor=1.3)
    assert c.process_low == pytest.approx(12.5 * 1.004**1.5 / (10.1 * 1.004**1.5))
    assert c.outcome == verdict.NOISY and not c.across_processes
    assert "not in every pairing of the two sides' processes" in c.reason()
    assert "1.30x in this run" in c.reason()


def test_a_difference_beyond_the_run_s_process_noise_in_every_pairing_is_a_step():
    a, b = _processes(10.0, 10.4), _processes(15.0, 15.6)
    c = verdict.compare(a, b, process_size=4, floor=1.3)
    assert c.outcome == verdict.STEP and c.across_processes and c.process_low > 1.4
    faster = verdict.compare(b, a, process_size=4, floor=1.3)  # and the other way round
    assert faster.outcome == verdict.STEP and faster.process_high < 1 / 1.4
    # a sample lost (failed) would shift every later process: no pairing is made up then
    lost = verdict.compare(a, [*b[:3], float("nan"), *b[4:]], process_size=4, floor=1.3)
    assert lost.process_low is None and lost.outcome == verdict.STEP
