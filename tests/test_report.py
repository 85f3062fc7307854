"""imgload report: real asv results of two stacks, hand-made broken results,
two machines merged."""

import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from imgload import report, verdict
from imgload.execution import EXECUTIONS
from imgload.results import ResultsError

from .helpers import asv_config, md_tables, write_stack_results

SMALL = "bench_decode.SmallImages.time_decode"


def _run_report(results: Path, out: Path, *extra) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "report",
            "--results",
            str(results),
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "report.md")
    return (out / "report.md").read_text()


def _section_table(text: str, heading: str, caption: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the first Markdown table after `heading`, then `caption`."""
    lines = text.splitlines()
    at = lines.index(heading)
    at = next(i for i in range(at, len(lines)) if lines[i].startswith(caption))
    start = next(i for i in range(at, len(lines)) if lines[i].startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in line.strip("|").split("|")])
    return block[0], block[2:]


def _json_results(results: Path, machine: str) -> dict:
    """stack -> {benchmark: {combo: value}} read straight from asv's JSON, not through asv."""
    benchmarks = json.loads((results / "benchmarks.json").read_text())
    out = {}
    for path in (results / machine).glob("*.json"):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        stack = data["env_vars"]["IMGLOAD_STACK"]
        columns = data["result_columns"]
        per = out.setdefault(stack, {})
        for name, row in data["results"].items():
            row = dict(zip(columns, row))
            import itertools

            params = benchmarks[name]["params"]
            combos = [tuple(v.strip("'") for v in c) for c in itertools.product(*params)]
            per[name] = dict(zip(combos, row["result"] or [None] * len(combos)))
    return out


@pytest.mark.asv
def test_report_of_a_real_two_stack_run(two_stack_run, tmp_path):
    results = two_stack_run["tmp"] / "results"
    text = _run_report(results, tmp_path)
    stacks = [s["env"]["IMGLOAD_STACK"] for s in two_stack_run["stacks"]]
    raw = _json_results(results, "imgload-a")
    assert set(raw) == set(stacks)

    header, rows = _section_table(text, f"### {SMALL}", "Seconds per image")
    assert header == [
        "decoder",
        "format",
        "execution",
        "cache",
        *stacks,
    ]  # one column per environment
    assert len(rows) == 5 * 2 * len(EXECUTIONS) * 2
    images = {
        s: raw[s]["bench_sample.Sample.track_images_per_call"][("SmallImages",)] for s in stacks
    }
    assert set(images.values()) == {16}  # the tiny manifest's sample, as the suite recorded it
    checked = 0
    for row in rows:
        combo = tuple(row[:4])
        for stack, cell in zip(stacks, row[4:]):
            value = raw[stack][SMALL].get(combo)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert cell == "n/a", (stack, combo, cell)
            else:
                # the median per image, then its spread (a --quick run keeps one sample:
                # no spread to speak of)
                assert cell.startswith(report.seconds(value / images[stack]) + " ±"), (
                    stack,
                    combo,
                    cell,
                )
                checked += 1
    assert checked >= 2 * 2 * 2 * 2 - 2 * 2  # cv2 in both stacks, simplejpeg in the newer one
    by_combo = {tuple(r[:4]): dict(zip(stacks, r[4:])) for r in rows}
    old, new = stacks
    assert (
        by_combo[("simplejpeg", "jpeg", "sequential", "warm")][old] == "n/a"
    )  # not installed in the old stack
    assert by_combo[("simplejpeg", "jpeg", "sequential", "warm")][new] != "n/a"
    assert by_combo[("pil", "png", "processes-2", "cold")] == {old: "n/a", new: "n/a"}  # not run

    # derived columns: speedup over sequential and cold / warm, from the same JSON values
    _, speed = _section_table(text, f"### {SMALL}", "Speedup over `sequential`")
    speed = {tuple(r[:4]): dict(zip(stacks, r[4:])) for r in speed}
    seq, pool = (
        raw[new][SMALL][("cv2", "jpeg", "sequential", "warm")],
        raw[new][SMALL][("cv2", "jpeg", "threads-2", "warm")],
    )
    assert speed[("cv2", "jpeg", "threads-2", "warm")][new] == f"{seq / pool:.2f}×"
    _, cold = _section_table(text, f"### {SMALL}", "Cold / warm")
    cold = {tuple(r[:3]): dict(zip(stacks, r[3:])) for r in cold}
    ratio = (
        raw[old][SMALL][("cv2", "jpeg", "sequential", "cold")]
        / raw[old][SMALL][("cv2", "jpeg", "sequential", "warm")]
    )
    assert cold[("cv2", "jpeg", "sequential")][old] == f"{ratio:.2f}×"

    # the harness-overhead ratio, and the environments' build records
    _, overhead = _section_table(
        text,
        "### Harness overhead: the suite's `sequential` / a bare `for f in files: decode(f)` loop",
        "|",
    )
    row = next(r for r in overhead if r[:2] == ["cv2", "jpeg"])
    paired = raw[new]["bench_overhead.Overhead.track_sequential_over_bare"][("cv2", "jpeg")]
    # a ratio of two timings taken in one process: positive and finite, whatever the machine's
    # load (a bound on its size would be a speed target in a unit test, and failed under load)
    assert 0 < paired < math.inf and row[2 + stacks.index(new)] == f"{paired:.3f}"
    assert next(r for r in overhead if r[:2] == ["pil", "png"])[2:] == ["n/a", "n/a"]  # not run
    _, envs = _section_table(text, "### Environments", "|")
    envs = {r[0]: r[1:] for r in envs}
    assert envs["Pillow"] == [s["req"]["pillow"] for s in two_stack_run["stacks"]]
    assert envs["NumPy"] == [s["req"]["numpy"] for s in two_stack_run["stacks"]]
    assert all(
        v not in ("n/a", "absent")
        for v in envs["Pillow libjpeg-turbo"] + envs["OpenCV JPEG"] + envs["CPU"]
    )
    for png in ("imgload-a-decoders.png", "imgload-a-threads.png", "imgload-a-cold-warm.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in text


def _hand_made(tmp: Path) -> Path:
    """Results asv could leave behind: a failed and a skipped value, a failed build,
    a benchmark missing from one environment, a corrupt results file."""
    results = tmp / "results"
    (results / "box").mkdir(parents=True)
    params = [["'cv2'", "'pil'"], ["'png'"], ["'sequential'", "'threads-2'"], ["'warm'", "'cold'"]]
    benchmarks = {
        SMALL: {
            "name": SMALL,
            "type": "time",
            "unit": "seconds",
            "version": "1",
            "params": params,
            "param_names": ["decoder", "format", "execution", "cache"],
        },
        "bench_pickle.CifarBatch.time_load": {
            "name": "bench_pickle.CifarBatch.time_load",
            "type": "time",
            "unit": "seconds",
            "version": "1",
            "params": [["'npy'"], ["'warm'"]],
            "param_names": ["format", "cache"],
        },
        "version": 2,
    }
    for name in (
        "time_bare_loop",
        "time_sequential",
    ):  # no paired track: the report divides the medians
        key = f"bench_overhead.Overhead.{name}"
        benchmarks[key] = {
            "name": key,
            "type": "time",
            "unit": "seconds",
            "version": "1",
            "params": [["'cv2'"], ["'jpeg'"]],
            "param_names": ["decoder", "format"],
        }
    (results / "benchmarks.json").write_text(json.dumps(benchmarks))
    machine = {
        "machine": "box",
        "cpu": "Test CPU",
        "num_cpu": "2",
        "os": "Linux",
        "arch": "x86_64",
        "ram": "1",
        "version": 1,
    }
    (results / "box" / "machine.json").write_text(json.dumps(machine))
    columns = ["result", "params", "version", "started_at", "duration"]

    def write(name, stack, results_):
        write_stack_results(
            results / "box", machine, stack, columns, results_, {"pillow": "1.0"}, name
        )

    # cv2 warm ok, cv2 cold failed (None), pil skipped (NaN), threads-2 ok
    small = [0.02, None, 0.01, 0.03, float("nan"), float("nan"), float("nan"), float("nan")]
    write(
        "aaaaaaaa-env-one.json",
        "one",
        {
            SMALL: [small, params, "1", 0, 1.0],
            "bench_overhead.Overhead.time_bare_loop": [
                [0.2],
                [["'cv2'"], ["'jpeg'"]],
                "1",
                0,
                1.0,
            ],
            "bench_overhead.Overhead.time_sequential": [
                [0.3],
                [["'cv2'"], ["'jpeg'"]],
                "1",
                0,
                1.0,
            ],
            "bench_pickle.CifarBatch.time_load": [None, [["'npy'"], ["'warm'"]], "1", 0, 1.0],
        },
    )
    write(
        "aaaaaaaa-env-two.json",
        "two",
        {"bench_pickle.CifarBatch.time_load": [[0.5], [["'npy'"], ["'warm'"]], "1", 0, 1.0]},
    )
    (results / "box" / "aaaaaaaa-env-three.json").write_text("{ not json")
    return results


def test_report_on_failed_skipped_and_missing_results_does_not_crash(tmp_path):
    text = _run_report(_hand_made(tmp_path), tmp_path / "out", "--partial")
    assert (
        "**Partial report**" in text and "aaaaaaaa-env-three.json" in text
    )  # the corrupt file, named
    header, rows = _section_table(text, f"### {SMALL}", "Seconds per")
    assert header[-2:] == ["one", "two"]
    rows = {tuple(r[:4]): r[4:] for r in rows}
    assert rows[("cv2", "png", "sequential", "cold")] == ["n/a", "n/a"]  # failed; missing
    assert rows[("pil", "png", "threads-2", "warm")] == ["n/a", "n/a"]  # skipped; missing
    # no bench_sample record here: per image from the manifest's default sample (1,000 files)
    assert rows[("cv2", "png", "sequential", "warm")][0] == report.seconds(0.02 / 1000)
    assert "Images per call from the dataset manifests' default profile" in text
    _, speed = _section_table(text, f"### {SMALL}", "Speedup")
    assert {tuple(r[:4]): r[4] for r in speed}[
        ("cv2", "png", "threads-2", "cold")
    ] == "n/a"  # over a failed sequential
    _, batch = _section_table(text, "### bench_pickle.CifarBatch.time_load", "Seconds per")
    assert (
        batch[0][2] == "n/a" and batch[0][3] != "n/a"
    )  # a failed build (result None) in one stack only
    assert "No build record for one, two" in text
    _, overhead = _section_table(
        text,
        "### Harness overhead: the suite's `sequential` / a bare `for f in files: decode(f)` loop",
        "|",
    )
    assert overhead == [["cv2", "jpeg", "1.500*", "n/a"]]


def test_marks_only_differences_between_stacks_that_are_beyond_the_noise(tmp_path):
    """Three stacks with 8 raw samples each: the middle one 2x faster than the first (marked),
    the last as fast as the middle one but noisier (not marked), one combination 5% apart
    (not marked)."""
    results = tmp_path / "results"
    (results / "box").mkdir(parents=True)
    params = [["'cv2'"], ["'png'", "'jpeg'"], ["'sequential'"], ["'warm'"]]
    (results / "benchmarks.json").write_text(
        json.dumps(
            {
                SMALL: {
                    "name": SMALL,
                    "type": "time",
                    "unit": "seconds",
                    "version": "1",
                    "params": params,
                    "param_names": ["decoder", "format", "execution", "cache"],
                },
                "version": 2,
            }
        )
    )
    machine = {
        "machine": "box",
        "cpu": "Test CPU",
        "num_cpu": "2",
        "os": "Linux",
        "arch": "x86_64",
        "ram": "1",
        "version": 1,
    }
    (results / "box" / "machine.json").write_text(json.dumps(machine))
    columns = [
        "result",
        "params",
        "version",
        "started_at",
        "duration",
        "stats_q_25",
        "stats_q_75",
        "samples",
    ]
    spread = [1.00, 1.01, 1.02, 1.005, 0.995, 1.015, 0.99, 1.0]
    noisy = [1.0, 1.3, 1.6, 1.1, 1.9, 1.0, 1.45, 2.2]

    def row(png, jpeg):
        q = [sorted(s) for s in (png, jpeg)]
        return [
            [q[0][4], q[1][4]],
            params,
            "1",
            0,
            1.0,
            [q[0][2], q[1][2]],
            [q[0][5], q[1][5]],
            [png, jpeg],
        ]

    stacks = {
        "a": row([0.02 * x for x in spread], [0.01 * x for x in spread]),
        "b": row([0.01 * x for x in spread], [0.0105 * x for x in spread]),
        "c": row([0.01 * x for x in noisy], [0.0105 * x for x in spread]),
    }
    for stack, small in stacks.items():
        write_stack_results(results / "box", machine, stack, columns, {SMALL: small})
    text = _run_report(results, tmp_path / "out")
    _, rows = _section_table(text, f"### {SMALL}", "Seconds per")
    rows = {r[1]: r[4:] for r in rows}
    assert "**2.00× faster**" in rows["png"][1] and "**" not in rows["png"][0]  # b against a
    assert (
        "**" not in rows["png"][2] and "±" in rows["png"][2]
    )  # c against b: as fast, only noisier
    assert not any("**" in cell for cell in rows["jpeg"])  # 5% apart: below the 1.1x threshold
    assert rows["png"][1].startswith(report.seconds(0.01 * sorted(spread)[4] / 1000) + " ±<1%")
    assert "beyond the noise" in text


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{ not json", "Expecting property name"),  # truncated or corrupt
        ("", "Expecting value"),  # empty
        (
            '{"version": "2", "results": {}}',
            "format version 2 (found '2')",
        ),  # another format version
        ('{"version": 1}', "(found 1)"),
        ("[]", "(found None)"),
    ],
)
def test_a_broken_results_file_is_named_and_the_report_stops_unless_partial(
    tmp_path, content, reason
):
    results = _hand_made(tmp_path)
    broken = results / "box" / "aaaaaaaa-env-three.json"
    broken.write_text(content)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "imgload", "report", "--results", str(results), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.startswith(f"imgload: error: {broken}: ")
        and reason in proc.stderr
        and "--partial" in proc.stderr
    )
    assert not out.exists()  # nothing written
    text = _run_report(results, out, "--partial")
    assert "**Partial report**" in text and str(broken) in text


def test_report_out_must_be_a_folder(tmp_path):
    results = _hand_made(tmp_path)
    (tmp_path / "a-file").write_text("mine")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "report",
            "--results",
            str(results),
            "--out",
            str(tmp_path / "a-file"),
            "--partial",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a folder" in proc.stderr
    assert (tmp_path / "a-file").read_text() == "mine"


def test_report_names_what_is_wrong_with_its_input(tmp_path):
    with pytest.raises(ResultsError, match="no such results folder"):
        report.render(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="benchmarks.json: no such file"):
        report.render(tmp_path / "empty", tmp_path / "out")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgload",
            "report",
            "--results",
            str(tmp_path / "nothing"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nothing" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.asv
def test_two_machines_merge_into_one_site_and_one_report(two_stack_run, tmp_path):
    """A second machine runs part of the matrix; its results/ and envinfo/ folders are merged
    into the first one's, then one `asv publish` and one report cover both."""
    first, asv, env = two_stack_run["tmp"], two_stack_run["asv"], two_stack_run["env"]
    other = tmp_path / "machine-b"
    other.mkdir()
    config_b = asv_config(
        other, two_stack_run["stacks"][-1:]
    )  # its own environment, verified and recorded there
    subprocess.run(
        [*asv, "machine", "--yes", "--machine", "imgload-b", "--config", str(config_b)],
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            *asv,
            "run",
            "--quick",
            "--machine",
            "imgload-b",
            "--config",
            str(config_b),
            "-b",
            "^bench_sample",
            "-b",
            r"SmallImages.time_decode\('cv2', 'jpeg', 'sequential', 'warm'",
            "HEAD^!",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    merged = tmp_path / "merged"
    shutil.copytree(first / "results", merged / "results")
    shutil.copytree(first / "envinfo", merged / "envinfo")
    shutil.copytree(other / "results" / "imgload-b", merged / "results" / "imgload-b")
    shutil.copytree(other / "envinfo", merged / "envinfo" / "imgload-b")
    config = asv_config(merged, two_stack_run["stacks"])
    pub = subprocess.run(
        [*asv, "publish", "--config", str(config)], env=env, capture_output=True, text=True
    )
    assert pub.returncode == 0, pub.stdout + pub.stderr
    index = json.loads((merged / "html" / "index.json").read_text())
    assert index["params"]["machine"] == ["imgload-a", "imgload-b"]
    graphs = {p.as_posix() for p in (merged / "html" / "graphs").rglob("*.json")}
    assert any("machine-imgload-a" in g for g in graphs) and any(
        "machine-imgload-b" in g for g in graphs
    )

    text = _run_report(merged / "results", tmp_path / "report")
    a, b = text.index("## Machine `imgload-a`"), text.index("## Machine `imgload-b`")
    assert a < b
    new = two_stack_run["stacks"][-1]["env"]["IMGLOAD_STACK"]
    header, rows = _section_table(text[b:], f"### {SMALL}", "Seconds per")
    assert header[-1] == new and len(header) == 5  # machine b ran one stack
    rows = {tuple(r[:4]): r[4] for r in rows}
    assert rows[("cv2", "jpeg", "sequential", "warm")] != "n/a"
    assert rows[("cv2", "jpeg", "threads-2", "warm")] == "n/a"  # machine b did not run it
    _, envs = _section_table(text[b:], "### Environments", "|")
    assert {r[0]: r[1] for r in envs}["Pillow"] == two_stack_run["stacks"][-1]["req"][
        "pillow"
    ]  # from envinfo/imgload-b/
    for png in ("imgload-a-threads.png", "imgload-b-threads.png"):
        assert (tmp_path / "report" / png).is_file()


# ------------------------------------------------------------------ report.md as HTML (the site)


class _Tables(HTMLParser):
    """Every table of an HTML fragment as rows of cell texts, markup dropped (as a reader sees)."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_report_as_html_keeps_every_section_table_cell_and_plot(tmp_path):
    text = _run_report(_hand_made(tmp_path), tmp_path / "out", "--partial")
    page = report.to_html(text)
    parsed = _Tables()
    parsed.feed(page)
    md = md_tables(text)
    assert len(md) >= 5 and parsed.tables == md  # every row and cell, in order
    headings = [line for line in text.splitlines() if line.startswith("#")]
    ids = re.findall(r'<h[1-3] id="([^"]+)">', page)
    assert len(ids) == len(headings) == len(set(ids))  # each section, and a link to each
    images = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)
    assert images and all(f'<img src="{src}" alt="{alt}">' in page for alt, src in images)
    # the partial banner, its list of files left out
    banner = page[page.index('<blockquote class="banner">') : page.index("</blockquote>")]
    assert "<strong>Partial report</strong>" in banner
    assert re.search(
        r"<ul><li><code>[^<]*/aaaaaaaa-env-three\.json: [^<]*</code></li></ul>", banner
    )
    outside_code = re.sub(r"<code>.*?</code>", "", page)
    assert not any(mark in outside_code for mark in ("|---", "**", "![", "\\*"))


def test_report_html_escapes_text_and_keeps_what_it_does_not_know_as_text():
    md = (
        "# Stacks <b>\n\n"
        "A `<code> & **not bold**` span, **bold** & \\* here\nand a second line\n\n"
        "| a | b |\n|---|---|\n| <i> | **1.50× slower** |\n\n"
        "> **Partial report**: left out:\n>\n> - `x.json`\n\n"
        "![plot <1>](m-decoders.png)\n\n"
        "* a list the report never writes\n"
        "# Stacks <b>\n"
    )
    assert report.to_html(md) == "\n".join(
        [
            '<h1 id="stacks-b">Stacks &lt;b&gt;</h1>',
            "<p>A <code>&lt;code&gt; &amp; **not bold**</code> span, <strong>bold</strong>"
            " &amp; * here\nand a second line</p>",
            "<table>\n<thead><tr><th>a</th><th>b</th></tr></thead>\n"
            "<tbody><tr><td>&lt;i&gt;</td><td><strong>1.50× slower</strong></td></tr></tbody>"
            "\n</table>",
            '<blockquote class="banner">\n<p><strong>Partial report</strong>: left out:</p>\n'
            "<ul><li><code>x.json</code></li></ul>\n</blockquote>",
            '<figure><img src="m-decoders.png" alt="plot &lt;1&gt;">'
            "<figcaption>plot &lt;1&gt;</figcaption></figure>",
            "<p>* a list the report never writes</p>",
            '<h1 id="stacks-b-2">Stacks &lt;b&gt;</h1>',
        ]
    )


def test_a_difference_no_larger_than_the_run_s_process_noise_is_not_marked(tmp_path):
    """asv's samples come in rounds, one process each (benchmarks.json: rounds 2, repeat 4), and
    on this VM a whole process can run slow. Stack b's png is 1.6x faster than a's in every
    pairing of processes (marked); its jpeg is slower than a's in every sample (the rank test
    alone would mark it, 1.4x) but b's own two jpeg processes are 1.31x apart, and the run's
    process-to-process noise is as large: not marked, and the report says why."""
    results = tmp_path / "results"
    (results / "box").mkdir(parents=True)
    params = [["'cv2'"], ["'png'", "'jpeg'"], ["'sequential'"], ["'warm'"]]
    info = {"name": SMALL, "type": "time", "unit": "seconds", "version": "1", "params": params}
    info.update(param_names=["decoder", "format", "execution", "cache"], rounds=2, repeat=4)
    (results / "benchmarks.json").write_text(json.dumps({SMALL: info, "version": 2}))
    machine = {"machine": "box", "cpu": "Test CPU", "num_cpu": "2", "os": "Linux"}
    (results / "box" / "machine.json").write_text(json.dumps({**machine, "version": 1}))

    def processes(*levels):  # asv's order: each process's 4 samples in turn
        return [level * (1 + 0.004 * k) for level in levels for k in range(4)]

    stacks = {
        "a": (processes(0.020, 0.0202), processes(0.010, 0.0101)),
        "b": (processes(0.0120, 0.0125), processes(0.0122, 0.0160)),
    }
    jpeg_alone = verdict.compare(stacks["a"][1], stacks["b"][1])
    assert jpeg_alone.outcome == verdict.STEP  # the samples alone: marked before processes counted
    columns = ["result", "params", "version", "started_at", "duration", "samples"]
    for stack, (png, jpeg) in stacks.items():
        row = [[sorted(png)[4], sorted(jpeg)[4]], params, "1", 0, 1.0, [png, jpeg]]
        write_stack_results(results / "box", machine, stack, columns, {SMALL: row})
    text = _run_report(results, tmp_path / "out")
    _, rows = _section_table(text, f"### {SMALL}", "Seconds per")
    rows = {r[1]: r[4:] for r in rows}
    assert "**1.64× faster**" in rows["png"][1]
    assert "**" not in rows["jpeg"][1] and rows["jpeg"][1] != report.NA
    floor = verdict.process_floor([1.01, 1.01, 0.0125 / 0.012, 0.016 / 0.0122])  # each result's
    assert 0.0122 / 0.0101 < floor < 1.3  # b's jpeg processes pair with a's no further apart
    assert f"{floor:.2f}× over all 4 results" in text  # too few for a floor of its own
    assert f"here each beyond {floor:.2f}× in every pairing of processes" in text


def test_a_benchmark_with_no_result_in_any_stack_gets_one_line_not_tables_of_na(tmp_path):
    """bench_dataloader outside its opt-in torch stack: skipped (NaN) in every default stack."""
    results = tmp_path / "results"
    (results / "box").mkdir(parents=True)
    params = [["'cv2'"], ["'jpeg'"], ["'sequential'"], ["'warm'"]]
    info = {"name": SMALL, "type": "time", "unit": "seconds", "version": "1", "params": params}
    info["param_names"] = ["decoder", "format", "execution", "cache"]
    (results / "benchmarks.json").write_text(json.dumps({SMALL: info, "version": 2}))
    machine = {"machine": "box", "cpu": "Test CPU", "num_cpu": "2", "os": "Linux"}
    (results / "box" / "machine.json").write_text(json.dumps({**machine, "version": 1}))
    columns = ["result", "params", "version", "started_at", "duration"]
    for stack in ("a", "b"):
        row = [[float("nan")], params, "1", 0, 1.0]
        write_stack_results(results / "box", machine, stack, columns, {SMALL: row})
    text = _run_report(results, tmp_path / "out")
    section = text[text.index(f"### {SMALL}") :].split("\n### ")[0]
    assert (
        section.splitlines()[2]
        == "n/a in every stack on this machine (not run, failed or skipped)."
    )
    assert "|" not in section and "Images per call" not in section
