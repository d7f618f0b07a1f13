"""The protocol fuzzer (tests/fuzz): its seed corpus matches what the samples generate, no
seed makes a large allocation, and a bounded fuzzing run finds no crash, leak, sanitizer
report or broken round trip."""
import fcntl
import filecmp
import os
import subprocess

import pytest

from conftest import ROOT, binpath

FUZZER = os.path.join(ROOT, "build", "fuzz", "fuzz_frame")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
           "ERROR: libFuzzer", "PROPERTY FAILED")


def clean_env():
    """The environment without the outer make's jobserver and sanitizer settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    return env


@pytest.fixture(scope="module")
def fuzzer():
    """Build build/fuzz/fuzz_frame once, even with several test processes."""
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", ".fuzz-build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        res = subprocess.run(["make", "--no-print-directory", "-f", "tests/fuzz/fuzz.mk",
                              "build"], cwd=ROOT, env=clean_env(), capture_output=True,
                             text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return FUZZER


def test_seed_corpus_matches_the_generator(tmp):
    res = subprocess.run([binpath("proto-tool"), "corpus", str(tmp)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    made = sorted(os.listdir(tmp))
    assert made == sorted(os.listdir(CORPUS)), \
        "tests/fuzz/corpus is stale: regenerate with proto-tool corpus tests/fuzz/corpus"
    _, mismatch, errors = filecmp.cmpfiles(tmp, CORPUS, made, shallow=False)
    assert not mismatch and not errors, "stale seeds: %s" % (mismatch + errors)
    assert len([n for n in made if n.startswith("msg-")]) == 13
    assert len([n for n in made if n.startswith("bad-")]) >= 5


def test_no_seed_allocates_a_megabyte(fuzzer, tmp):
    seeds = sorted(os.path.join(CORPUS, n) for n in os.listdir(CORPUS))
    res = subprocess.run([fuzzer, "-malloc_limit_mb=1", "-rss_limit_mb=512"] + seeds,
                         cwd=tmp, env=clean_env(), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-4000:]
    assert not any(r in res.stderr for r in REPORTS), res.stderr[-4000:]


def test_fuzzing_for_20_seconds_finds_nothing(fuzzer, tmp):
    work = tmp / "corpus"
    work.mkdir()
    res = subprocess.run([fuzzer, "-max_total_time=20", "-rss_limit_mb=512",
                          "-artifact_prefix=%s/" % tmp, "-print_final_stats=1",
                          str(work), CORPUS],
                         cwd=tmp, env=clean_env(), capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr[-4000:]
    assert not any(r in res.stderr for r in REPORTS), res.stderr[-4000:]
    assert "Done " in res.stderr
    assert not [n for n in os.listdir(tmp) if n.startswith(("crash-", "leak-", "oom-",
                                                              "timeout-"))]
