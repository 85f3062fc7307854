"""Is a difference between two sets of timing samples real? Pure functions, no measuring.

Everything the suite prints as a comparison (a ladder step, one stack against another)
is decided here, the same way:

- **Test**: asv's own rank test (Mann-Whitney U, two-sided, p < 0.002, the threshold of
  `asv compare`), on the raw samples. With n + m samples the smallest p it can ever
  return is 2 / C(n + m, n): 6 + 6 samples give 0.0022, so they can never say "different".
  `compare` checks that first and answers "too few samples", never "within the noise".
- **Statistic**: the ratio of the two sides' fastest samples. Interference only adds
  time: a busy neighbour can slow a sample down, never speed it up, so the fastest of
  several interleaved samples is the one least disturbed, and it stays put on a machine
  where the median of the same samples moves by a third (measured here under
  `cpu-noise`: median +30%, lower quartile +5%, minimum +1%).
- **Its interval**: the fastest of n samples lies, with probability 1 - 0.005, among the
  fastest fraction f = 1 - 0.005^(1/n) of what that release can produce on this machine,
  so each side's true fastest time lies between its minimum and its f-quantile; the ratio
  lies between min(b) / q_f(a) and q_f(b) / min(a) (99% for the two sides together). Few
  or heavily disturbed samples make f, and so the interval, wide; more samples narrow it.
- **Threshold**: a step must also be at least `factor` (1.1x) either way, as in `asv compare`.
- **Decision**: a step needs the rank test, an interval on one side of 1 and a ratio
  beyond the threshold; "no step" needs the whole interval inside the threshold. Anything else cannot be decided from these samples:
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


CONFIDENCE = 0.995  # per side; the two sides together: LEVEL


def fastest_fraction(n: int) -> float:
    """f: the fastest of n samples lies within the fastest fraction f of the release's
    possible samples with probability CONFIDENCE (1 - (1 - f)^n = CONFIDENCE)."""
    return 1 - (1 - CONFIDENCE) ** (1 / n)


def fastest_ratio(a, b) -> tuple[float, float, float]:
    """(min(b) / min(a), low, high): the ratio of the fastest samples and its interval."""
    fa, fb = quantile(a, fastest_fraction(len(a))), quantile(b, fastest_fraction(len(b)))
    return min(b) / min(a), min(b) / fa, fb / min(a)


@dataclass(frozen=True)
class Comparison:
    """Samples b against samples a (b / a: above 1 is slower)."""

    n_a: int
    n_b: int
    ratio: float  # fastest sample of b / fastest sample of a
    low: float  # its 99% interval
    high: float
    p: float | None  # rank test, None where it cannot reach P_THRESHOLD
    noise: float  # the larger relative spread (IQR / median) of the two
    outcome: str  # STEP, NONE, NOISY or FEW
    factor: float

    @property
    def slower(self) -> bool:
        return self.ratio > 1

    @property
    def size(self) -> float:
        """How many times slower or faster, >= 1."""
        return self.ratio if self.ratio >= 1 else 1 / self.ratio

    def interval(self) -> str:
        return f"99% CI {self.low:.3f} .. {self.high:.3f}"

    def reason(self) -> str:
        """Why the outcome is what it is, in one clause."""
        n = f"{self.n_a} + {self.n_b} samples"
        if self.outcome == FEW:
            need = min_samples()
            return (f"too few samples to decide: {n} cannot reach the rank test's p < {P_THRESHOLD:g}"
                    f" (smallest possible p {smallest_p(self.n_a, self.n_b):.4f}); take at least {need} of each")
        if self.outcome == STEP:
            return f"{self.size:.2f}x {'slower' if self.slower else 'faster'}, beyond the noise (p = {self.p:.1e}, {n})"
        if self.outcome == NOISY:
            return (f"too noisy to decide: repeated samples of one release spread by {self.noise:.0%} (IQR / median),"
                    f" so the ratio's {self.interval()} reaches past the {self.factor:g}x threshold ({n})")
        if self.p is not None and self.p < P_THRESHOLD:
            return (f"no significant step: the samples differ (p = {self.p:.1e}), but the fastest ones by less than"
                    f" the {self.factor:g}x threshold ({n})")
        return f"no significant step: the ratio's interval lies within the {self.factor:g}x threshold ({n})"


def beyond(ratio: float, factor: float) -> bool:
    return ratio >= factor or ratio <= 1 / factor


def compare(a, b, factor: float = FACTOR) -> Comparison:
    """Judge samples b against samples a (see the module's docstring for the rules)."""
    from asv._stats import mann_whitney_u

    a = [x for x in a if x == x and x > 0]
    b = [x for x in b if x == x and x > 0]
    if not a or not b:
        raise ValueError("compare needs at least one positive sample on each side")
    ratio, low, high = fastest_ratio(a, b)
    noise = max(spread(a), spread(b))
    reachable = smallest_p(len(a), len(b)) < P_THRESHOLD
    p = mann_whitney_u(a, b)[1] if reachable else None
    apart = low > 1 or high < 1
    if not reachable:
        outcome = FEW
    elif p < P_THRESHOLD and apart and beyond(ratio, factor):
        outcome = STEP
    elif 1 / factor < low and high < factor:
        outcome = NONE
    else:
        outcome = NOISY
    return Comparison(len(a), len(b), ratio, low, high, p, noise, outcome, factor)


# -- where a ladder changes level ---------------------------------------------------------


@dataclass(frozen=True)
class LevelChange:
    at: int  # index of the first rung of the new level
    ratio: float  # new level / old level
    lone: bool  # the new level is this one rung only, and the ladder goes on after it


def ladder_steps(values: list[float | None], invert: bool = False, threshold: float = CANDIDATE,
                 jump: float = FACTOR) -> list[LevelChange]:
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
            found[after[0]] = LevelChange(after[0], ratio, len(rungs) == 1 and following is not None)
    for a, b, c in zip(present, present[1:], [*present[2:], None]):
        ratio = values[b] / values[a] if values[a] else math.inf
        if sought(ratio) and beyond(ratio, jump):
            undone = c is not None and not sought(values[c] / values[b]) and beyond(values[c] / values[b], jump)
            if b in found:
                found[b] = LevelChange(b, found[b].ratio, found[b].lone or undone)
            else:
                found[b] = LevelChange(b, ratio, undone)
    return sorted(found.values(), key=lambda c: -abs(math.log(c.ratio)))
