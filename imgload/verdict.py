"""Is a difference between two sets of timing samples real? Pure functions, no measuring.

Everything the suite prints as a comparison (a ladder step, one stack against another)
is decided here, the same way:

- **Test**: asv's own rank test (Mann-Whitney U, two-sided, p < 0.002, the threshold of
  `asv compare`), on the raw samples. With n + m samples the smallest p it can ever
  return is 2 / C(n + m, n): 6 + 6 samples give 0.0022, so they can never say "different".
  `compare` checks that first and answers "too few samples", never "within the noise".
- **Statistic**: the Hodges-Lehmann ratio, the median of the n x m ratios b_j / a_i, with
  its distribution-free interval (the rank test's own confidence interval for a shift of
  log-times: the k-th smallest and k-th largest of those ratios). It is the effect size that
  belongs to the rank test (its interval excludes 1 when the test rejects at that level), and it
  rests on every sample, not on the luckiest one.
  Why not the fastest sample, which this module used first: interference only adds time,
  but on this 2-core VM it does not come and go cleanly. Under `cpu-noise` a CPU-bound loop
  runs at two levels, about 27 ms while the other core is idle and 32 ms while it is busy,
  and whole rounds (one process) sit at one level; the fastest sample (or the 2nd or 3rd)
  then counts how often a release happened to meet an idle neighbour, a rare event: in one
  run of the test ladder, releases of identical cost differed by 10% in fastest samples
  (0.90 and 1.10 after 48 + 72 samples; the Hodges-Lehmann ratio of the same: 0.98, 1.02).
- **What keeps interference from faking a step**: the samples compared are measured
  interleaved (`make find`: A B, then B A, in rounds of 4; `make bench`: asv's interleaved
  rounds across stacks), so both sides meet the same machine, and a step must also show in
  the fastest samples: interference only adds time, so a release that is really slower is
  slower at its fastest too. Samples that differ while their fastest do not (the machine was
  busier while one side ran) are "too noisy to decide", never a step.
- **Threshold**: a step must also be at least `factor` (1.1x) either way, as in `asv compare`.
- **The fastest samples' interval**: the fastest of n samples lies, with probability
  1 - 0.005, among the fastest fraction f = 1 - 0.005^(1/n) of what that release can produce,
  so the ratio of the fastest samples lies between min(b) / q_f(a) and q_f(b) / min(a). Where
  the machine has a clean floor (a share of the samples undisturbed, the rest slower by up
  to 2.5x: heavy noise with an idle moment now and then), this interval narrows faster than
  the Hodges-Lehmann one, which pays for the slow samples' spread.
- **Processes**: asv takes a benchmark's samples in rounds, one process each, and on this
  VM a whole process can run at one speed level: the same decode took 42.7 ms in one process
  and 57.5 ms in the next, each process's four samples within 1% of each other, on a quiet
  machine (one vCPU slows for seconds at a time). Samples of one process are then not
  independent, and 8 + 8 samples from 2 + 2 processes can pass the rank test on one slow
  process alone. So where the samples come in processes (`per_process`), a step also needs
  every pairing of a process of one side with a process of the other to differ the same
  way, by at least the threshold and by at least `floor`: how far two processes of the same
  side differ in this run (the report takes its 95th percentile over every result of the
  benchmark, or of the machine's results where one benchmark has too few, `process_floor`),
  so that a difference no larger than the run's own process-to-process noise is never marked.
- **Decision**: a step needs the rank test, an interval on one side of 1, a ratio beyond
  the threshold and fastest samples beyond it the same way (and, with processes, every
  pairing of processes beyond the threshold and the floor); "no step" needs the
  Hodges-Lehmann interval wholly inside the threshold or, where the samples agree (that
  interval contains 1, the ratio is within the threshold), the fastest samples' interval
  inside it: each is a 99% statement under its own condition (interleaved sides meet the same
  machine; the machine has a floor), and on a machine with two speed levels the fastest
  samples alone can miss a real 1.15x step. Anything else cannot be decided from these samples:
  "too noisy to decide", with the spread of repeated samples (IQR / median) as the figure,
  so that the caller can take more samples or say so, never a verdict either way.

`ladder_steps` finds where a release ladder changes level with asv's own step detection
(`asv.step_detect`, what its regressions page uses) and tells a lone rung, which may be a
spike, from a new level.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

P_THRESHOLD = 0.002  # asv compare's and asv's is_different's
FACTOR = 1.1  # asv compare's default: smaller ratios are not called a step
LEVEL = 0.99  # the interval printed with every ratio
CANDIDATE = 1.05  # a level change in stored ladder results worth measuring again
EXACT_UP_TO = 20  # samples per side up to which the rank distribution is exact (asv's own switch)

STEP, NONE, NOISY, FEW = "step", "no step", "too noisy", "too few samples"


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p the exact rank test can return for n and m samples."""
    return 2 / math.comb(n + m, n) if n and m else 1.0


def min_samples(p: float = P_THRESHOLD) -> int:
    """Samples per side (equal sides) the rank test needs to be able to reach p."""
    n = 1
    while smallest_p(n, n) >= p:
        n += 1
    return n


def quantile(xs, q: float) -> float:
    """Linear-interpolated quantile of `xs` (0 <= q <= 1)."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def spread(xs) -> float:
    """Relative spread of repeated samples: interquartile range / median."""
    return (quantile(xs, 0.75) - quantile(xs, 0.25)) / statistics.median(xs)


def interval_rank(n: int, m: int, level: float = LEVEL) -> int:
    """k >= 0: the k-th smallest and k-th largest of the n x m pairwise differences bound the
    shift with probability >= `level` (P(U < k) <= (1 - level) / 2 under no difference);
    0 where n and m are too few for that level (the interval is then unbounded)."""
    tail = (1 - level) / 2
    if max(n, m) <= EXACT_UP_TO:
        from asv._stats import mann_whitney_u_pmf

        memo: dict = {}
        k, below = 0, mann_whitney_u_pmf(n, m, 0, memo)  # below: P(U <= k)
        while below <= tail:
            k += 1
            below += mann_whitney_u_pmf(n, m, k, memo)
        return k
    z = statistics.NormalDist().inv_cdf(1 - tail)
    return max(0, math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12) + 0.5))


def typical_ratio(a, b, level: float = LEVEL) -> tuple[float, float, float]:
    """(ratio, low, high): the Hodges-Lehmann ratio of b to a (the median of every b_j / a_i)
    and its rank-test interval at `level`."""
    log_a, log_b = [math.log(x) for x in a], [math.log(y) for y in b]  # once each, not n x m times
    logs = sorted(y - x for x in log_a for y in log_b)
    k = interval_rank(len(a), len(b), level)
    low = math.exp(logs[k - 1]) if k else 0.0
    high = math.exp(logs[-k]) if k else math.inf
    return math.exp(statistics.median(logs)), low, high


CONFIDENCE = 0.995  # per side; the two sides together: LEVEL


def fastest_fraction(n: int) -> float:
    """f: the fastest of n samples lies within the fastest fraction f of the release's
    possible samples with probability CONFIDENCE (1 - (1 - f)^n = CONFIDENCE)."""
    return 1 - (1 - CONFIDENCE) ** (1 / n)


def fastest_ratio(a, b) -> tuple[float, float, float]:
    """(min(b) / min(a), low, high): the ratio of the fastest samples and its interval, each
    side's fastest time lying between its minimum and its f-quantile."""
    fa, fb = quantile(a, fastest_fraction(len(a))), quantile(b, fastest_fraction(len(b)))
    return min(b) / min(a), min(b) / fa, fb / min(a)


FLOOR_QUANTILE = 0.95  # of the run's process-to-process ratios: the floor a marked step must pass
# results of one benchmark needed for a floor of its own (short calls are noisier than long
# ones: 1.16x for large-image decoders, 1.70x for opening a container, in one quiet run);
# fewer, and the benchmark takes the floor of every result of the machine
FLOOR_MIN_RESULTS = 40


def per_process(samples, size: int | None) -> list[list[float]] | None:
    """asv appends each round's samples (one process) in turn: split them back into processes
    of `size` samples; None where there are fewer than two or the count does not divide."""
    samples = list(samples)
    if not size or size < 1 or len(samples) < 2 * size or len(samples) % size:
        return None
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def medians(groups) -> list[float]:
    """Each process's median."""
    return [statistics.median(g) for g in groups]


def process_ratios(a_medians, b_medians) -> tuple[float, float]:
    """(lowest, highest) ratio of a process median of b to a process median of a, over every
    pairing of a process of a with one of b."""
    return min(b_medians) / max(a_medians), max(b_medians) / min(a_medians)


def process_spread(groups) -> float:
    """How far the processes of one side differ: the slowest process median / the fastest."""
    m = medians(groups)
    return max(m) / min(m)


def process_floor(spreads, q: float = FLOOR_QUANTILE, least: int = 1, fallback: float = 1.0):
    """The process-to-process noise of a run: the q-quantile of `spreads` (process_spread of
    every result that has processes); `fallback` where there are fewer than `least`.

    Why the quantile is a floor: with processes independent, the ratio of a process median of
    one side to one of the other, where the sides do not differ, is distributed as the ratio of
    two processes of the same side, which `spreads` samples; so one pairing passes the floor
    by chance with probability (1 - q) / 2 a direction, and every pairing at once far less."""
    spreads = [s for s in spreads if s == s and s >= 1]
    return quantile(spreads, q) if spreads and len(spreads) >= least else fallback


@dataclass(frozen=True)
class Comparison:
    """Samples b against samples a (b / a: above 1 is slower)."""

    n_a: int
    n_b: int
    ratio: float  # Hodges-Lehmann ratio of b to a
    low: float  # its 99% interval
    high: float
    fastest: float  # fastest sample of b / fastest sample of a
    fastest_low: float  # its 99% interval
    fastest_high: float
    p: float | None  # rank test, None where it cannot reach P_THRESHOLD
    noise: float  # the larger relative spread (IQR / median) of the two
    outcome: str  # STEP, NONE, NOISY or FEW
    factor: float
    # every pairing of a process of a with one of b: the lowest and highest ratio of their
    # medians (None: the samples did not come in processes), and the floor they had to pass
    process_low: float | None = None
    process_high: float | None = None
    floor: float | None = None  # None: the pairings were not checked
    # the Hodges-Lehmann ratio of the process medians and its 99% interval (None: no
    # processes): the ratio's uncertainty with each process one observation, as it is
    process_ratio: tuple[float, float, float] | None = None

    @property
    def across_processes(self) -> bool:
        """Every pairing of processes shows the difference, beyond the threshold and the floor
        (True where the samples did not come in processes or no floor was given: nothing to
        check)."""
        if self.floor is None:
            return True
        return _processes_agree(self.process_low, self.process_high, max(self.factor, self.floor))

    @property
    def slower(self) -> bool:
        return self.ratio > 1

    @property
    def size(self) -> float:
        """How many times slower or faster, >= 1."""
        return self.ratio if self.ratio >= 1 else 1 / self.ratio

    def interval(self) -> str:
        return f"99% CI {self.low:.3f} .. {self.high:.3f}"

    def process_interval(self) -> str:
        """The ratio's interval over processes, where the samples came in processes."""
        if self.process_ratio is None:
            return ""
        ratio, low, high = self.process_ratio
        return f"over processes {ratio:.3f}, 99% CI {low:.3f} .. {high:.3g}"

    def reason(self) -> str:
        """Why the outcome is what it is, in one clause."""
        n = f"{self.n_a} + {self.n_b} samples"
        if self.outcome == FEW:
            need = min_samples()
            return (
                f"too few samples to decide: {n} cannot reach the rank test's p < {P_THRESHOLD:g}"
                f" (smallest possible p {smallest_p(self.n_a, self.n_b):.4f}); take at least"
                f" {need} of each"
            )
        if self.outcome == STEP:
            return (
                f"{self.size:.2f}x {'slower' if self.slower else 'faster'}, beyond the noise"
                f" (p = {self.p:.1e}, {n})"
            )
        differs = (
            self.outcome == NOISY
            and self.p < P_THRESHOLD
            and _apart(self.low, self.high)
            and beyond(self.ratio, self.factor)
        )
        if differs and not self.across_processes:
            return (
                f"too noisy to decide: the samples differ ({self.size:.2f}x, p = {self.p:.1e}),"
                f" but not in every pairing of the two sides' processes (process medians"
                f" {self.process_low:.2f} .. {self.process_high:.2f}x apart; two processes of"
                f" one side differ by up to {self.floor:.2f}x in this run) ({n})"
            )
        if differs:
            return (
                f"too noisy to decide: the samples differ ({self.size:.2f}x, p = {self.p:.1e}),"
                f" but the fastest ones only {self.fastest:.2f}x: the machine was busier while one"
                f" release ran ({n})"
            )
        if self.outcome == NOISY:
            return (
                f"too noisy to decide: repeated samples of one release spread by {self.noise:.0%}"
                f" (IQR / median), so the ratio's {self.interval()} reaches past the"
                f" {self.factor:g}x threshold ({n})"
            )
        if self.p is not None and self.p < P_THRESHOLD:
            return (
                f"no significant step: the samples differ (p = {self.p:.1e}), but by less than"
                f" the {self.factor:g}x threshold ({n})"
            )
        if within(self.low, self.high, self.factor):
            return (
                f"no significant step: the ratio's interval lies within the {self.factor:g}x"
                f" threshold ({n})"
            )
        return (
            f"no significant step: the fastest samples' ratio {self.fastest:.3f}"
            f" (99% CI {self.fastest_low:.3f} .. {self.fastest_high:.3f}) lies within the"
            f" {self.factor:g}x threshold ({n})"
        )


def beyond(ratio: float, factor: float) -> bool:
    return ratio >= factor or ratio <= 1 / factor


def within(low: float, high: float, factor: float) -> bool:
    return 1 / factor < low and high < factor


def _processes_agree(low: float | None, high: float | None, bar: float) -> bool:
    """Every pairing of processes (their medians' ratios low .. high) beyond `bar` one way;
    True where there are no processes to check."""
    return low is None or high is None or low >= bar or high <= 1 / bar


def _apart(low: float, high: float) -> bool:
    return low > 1 or high < 1


def compare(
    a, b, factor: float = FACTOR, process_size: int | None = None, floor: float | None = None
) -> Comparison:
    """Judge samples b against samples a (see the module's docstring for the rules).
    `process_size`: the samples came in processes of that many each (asv's repeat, one round
    per process, in order): the ratio gets an interval over processes too, and with a `floor`
    a step must pass it in every pairing of processes (the report's rule between stacks, two
    processes a side). `make find` gives no floor: its confirmation takes six or more processes
    a side, interleaved, and one process slowed by a neighbour must not veto a step there."""
    from asv._stats import mann_whitney_u

    # a dropped sample (failed, NaN) would shift every later process: then no processes
    whole = all(x == x and x > 0 for x in [*a, *b])
    a = [x for x in a if x == x and x > 0]
    b = [x for x in b if x == x and x > 0]
    if not a or not b:
        raise ValueError("compare needs at least one positive sample on each side")
    groups_a = per_process(a, process_size) if whole else None
    groups_b = per_process(b, process_size) if whole else None
    process_low = process_high = process_ratio = None
    if groups_a and groups_b:
        ma, mb = medians(groups_a), medians(groups_b)
        process_low, process_high = process_ratios(ma, mb)
        process_ratio = typical_ratio(ma, mb)
    ratio, low, high = typical_ratio(a, b)
    fastest, fastest_low, fastest_high = fastest_ratio(a, b)
    noise = max(spread(a), spread(b))
    reachable = smallest_p(len(a), len(b)) < P_THRESHOLD
    p = mann_whitney_u(a, b)[1] if reachable else None
    same_way = (fastest > 1) == (ratio > 1) and beyond(fastest, factor)
    # the fastest samples may vouch for "no step" only where every sample agrees: no
    # difference the rank test can see, and a typical ratio within the threshold (on a
    # machine with two speed levels, the fastest samples can miss a real 1.15x step)
    agrees = not _apart(low, high) and not beyond(ratio, factor)
    processes_agree = floor is None or _processes_agree(
        process_low, process_high, max(factor, floor)
    )
    if not reachable:
        outcome = FEW
    elif (
        p < P_THRESHOLD
        and _apart(low, high)
        and beyond(ratio, factor)
        and same_way
        and processes_agree
    ):
        outcome = STEP
    elif within(low, high, factor) or (within(fastest_low, fastest_high, factor) and agrees):
        outcome = NONE
    else:
        outcome = NOISY
    return Comparison(
        len(a),
        len(b),
        ratio,
        low,
        high,
        fastest,
        fastest_low,
        fastest_high,
        p,
        noise,
        outcome,
        factor,
        process_low,
        process_high,
        floor,
        process_ratio,
    )


# -- where a ladder changes level ---------------------------------------------------------


@dataclass(frozen=True)
class LevelChange:
    at: int  # index of the first rung of the new level
    ratio: float  # new level / old level
    lone: bool  # the new level is this one rung only, and the ladder goes on after it


def ladder_steps(
    values: list[float | None],
    invert: bool = False,
    threshold: float = CANDIDATE,
    jump: float = FACTOR,
) -> list[LevelChange]:
    """Level changes in one value per rung (None: no result), sought direction only
    (slower, or faster with `invert`), largest first.

    Two sources: asv's piecewise-constant fit (`step_detect.detect_steps`, its regressions
    page's), level changes of at least `threshold`; and neighbouring rungs at least `jump`
    apart, because the fit needs a long series: on a short ladder with a spike in it, the
    spike inflates its noise estimate and it fits one level to everything. A lone rung is a
    one-rung level (or a jump the next rung undoes) with more rungs after it: a spike if
    the re-measurement confirms that the next rung comes back."""
    from asv.step_detect import detect_steps

    present = [i for i, v in enumerate(values) if v is not None]
    if len(present) < 2:
        return []
    sought = (lambda r: r > 1) if not invert else (lambda r: r < 1)
    found: dict[int, LevelChange] = {}
    segments = detect_steps(values)
    for before, after, following in zip(segments, segments[1:], [*segments[2:], None]):
        ratio = after[2] / before[2] if before[2] else math.inf
        if sought(ratio) and beyond(ratio, threshold):
            rungs = [i for i in range(after[0], after[1]) if values[i] is not None]
            found[after[0]] = LevelChange(
                after[0], ratio, len(rungs) == 1 and following is not None
            )
    for a, b, c in zip(present, present[1:], [*present[2:], None]):
        ratio = values[b] / values[a] if values[a] else math.inf
        if sought(ratio) and beyond(ratio, jump):
            undone = (
                c is not None
                and not sought(values[c] / values[b])
                and beyond(values[c] / values[b], jump)
            )
            if b in found:
                found[b] = LevelChange(b, found[b].ratio, found[b].lone or undone)
            else:
                found[b] = LevelChange(b, ratio, undone)
    return sorted(found.values(), key=lambda c: -abs(math.log(c.ratio)))
