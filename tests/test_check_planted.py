"""What a check leaves at the paths the next attempt uses tells it nothing and stops
nothing: a symbolic link at a deliverable's path that leads out of the workspace is not
followed when the next attempt's output is estimated (the size and the lines of the file it
named, a secret say, went into that request's max_tokens); and a confined check can put
nothing where the next attempt's check log goes (a directory there made that attempt fail
CHECK_NOT_RUN, "Is a directory"), nor have the worker put it there through a link it left
to the logs directory; such a link, or one out of the workspace, at a deliverable's path
fails the next attempt before its LLM call."""
import os

import pytest

from e2e_helpers import (Standin, drain_until_exit, import_plan, init_db, needs_namespaces,
                         phase_spec, rows)

KEY = "sk-ant-planted-test-key"

# The first attempt's check puts a link to TARGET at the first deliverable's path and
# fails; the next one passes.
PLANT_LINK = ("if [ -e .planted ]; then exit 0; fi; touch .planted; "
              "ln -sfn %s out/mod.py; exit 1")
DELIVERABLES = ("out/mod.py", "out/a.py", "out/b.py", "out/c.py", "out/d.py", "out/e.py")


def write_py(path, lines):
    """A Python file of `lines` lines, a tenth of them imports, some deeply indented."""
    with open(path, "w") as f:
        for i in range(lines):
            f.write("import mod%d\n" % i if i % 10 == 0 else
                    "%sx%d = %d\n" % (" " * (24 if i % 7 == 0 else 0), i, i))


def max_tokens_of_attempts(tmp, target):
    """Drain one phase whose first check links its first deliverable to `target` and
    fails; return the max_tokens of each builder request, in order."""
    os.makedirs(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", DELIVERABLES, check=PLANT_LINK % target,
                                                   complexity="high")])])
    llm = Standin(tmp)
    sup, rc = drain_until_exit(tmp, url, llm, 1, "--max-attempts-per-phase", 2,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    assert os.path.islink(os.path.join(ws, "out", "mod.py")), sup.stderr()
    attempts = [(r["outcome"], r["failure_reason"]) for r in rows(
        url, "SELECT outcome, failure_reason FROM attempts ORDER BY attempt_number")]
    assert attempts == [("failed", "CHECK_FAILED"), ("failed", "WRITE_FAILED")], \
        (attempts, sup.stderr())
    return [r["max_tokens"] for r in llm.requests()]


def test_a_link_out_of_the_workspace_at_a_deliverables_path_tells_the_estimate_nothing(tmp):
    tmp = str(tmp)
    small, big = os.path.join(tmp, "small.py"), os.path.join(tmp, "big.py")
    write_py(small, 3)
    write_py(big, 900)
    seen = {name: max_tokens_of_attempts(os.path.join(tmp, name), path)
            for name, path in (("small", small), ("big", big))}
    # The second attempt makes no request, whatever the link names: the link is found
    # before the call (test_a_symlink_out_of_the_workspace_at_a_deliverables_path_...).
    assert len(seen["small"]) == 1 and len(seen["big"]) == 1, seen
    assert seen["small"] == seen["big"], seen


# The first attempt's check tries to put a directory where the second attempt's check logs
# go, in the logs directory and in one it would move into place of it, recording how each
# try ended, and fails; the next one passes.
PLANT_DIR = r"""if [ -e .planted ]; then exit 0; fi; touch .planted
try() { if "$@" 2>>planted.err; then echo ok; else echo refused; fi; }
{
try mkdir .autopack/logs/run__p1__a2.stdout.txt
try mkdir .autopack/logs/run__p1__a2.stderr.txt
try mv .autopack/logs .autopack/logs.moved
try mv .autopack .autopack.moved
try mkdir -p .autopack.new/logs/run__p1__a2.stdout.txt
try mv -T .autopack.new .autopack
} > planted.txt
exit 1"""


def test_a_check_cannot_occupy_the_path_of_the_next_attempts_check_log(tmp):
    needs_namespaces()
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=PLANT_DIR)])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, "--max-attempts-per-phase", 2,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    attempts = rows(url, "SELECT outcome, failure_reason, message FROM attempts "
                    "ORDER BY attempt_number")
    assert [(a["outcome"], a["failure_reason"]) for a in attempts] == [
        ("failed", "CHECK_FAILED"), ("success", None)], (attempts, sup.stderr())
    with open(os.path.join(ws, "planted.txt")) as f:
        tries = f.read().split()
    with open(os.path.join(ws, "planted.err")) as f:
        errors = f.read()
    # The logs directory is read-only to the check, and neither it nor the directory
    # holding it can be moved away, nor another put in its place.
    assert tries == ["refused"] * 4 + ["ok", "refused"], (tries, errors)
    logs = os.path.join(ws, ".autopack", "logs")
    for stream in ("stdout", "stderr"):
        assert os.path.isfile(os.path.join(logs, "run__p1__a2.%s.txt" % stream))


# The first attempt's check puts a link to its logs directory, which it may not write, in
# place of out/ and fails; the next answer writes through it a directory where the third
# attempt's check log goes, and the deliverable.
PLANT_LOGS_LINK = "if [ -L out ]; then exit 1; fi; rm -rf out; ln -s .autopack/logs out; exit 1"


def test_the_worker_writes_no_answer_through_a_link_to_the_logs_directory(tmp):
    # The whole workspace in scope: the link stays inside it. The worker wrote the files
    # into .autopack/logs, and the third attempt failed CHECK_NOT_RUN, "Is a directory",
    # as when the check itself could write there.
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    # The deliverable outside out/: one through the link fails before the call (below).
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", ("mod.py",), check=PLANT_LOGS_LINK,
                                                   paths=(".",))])])
    script = [{"mode": "normal"},
              {"mode": "hostile", "paths": ["out/run__p1__a3.stdout.txt/x.py"]},
              {"mode": "hostile", "paths": ["out/mod.py"]}]
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, script), 1,
                               "--max-attempts-per-phase", 3, env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    attempts = rows(url, "SELECT failure_reason, message FROM attempts "
                    "ORDER BY attempt_number")
    assert [a["failure_reason"] for a in attempts] == [
        "CHECK_FAILED", "SCOPE_VIOLATION", "SCOPE_VIOLATION"], (attempts, sup.stderr())
    assert attempts[1]["message"].startswith(
        'path "out/run__p1__a3.stdout.txt/x.py": symlink out leads into the .autopack '
        'directory, which is reserved (-> .autopack/logs/run__p1__a3.stdout.txt/x.py)'), \
        attempts
    assert attempts[2]["message"].startswith(
        'path "out/mod.py": symlink out leads into the .autopack directory'), attempts
    # Nothing was written through the link: only the first attempt's check ran.
    assert sorted(os.listdir(os.path.join(ws, ".autopack", "logs"))) == [
        "run__p1__a1.stderr.txt", "run__p1__a1.stdout.txt"]


def test_a_deliverable_through_a_link_to_the_logs_directory_fails_before_the_call(tmp):
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=PLANT_LOGS_LINK,
                                                   paths=(".",))])])
    llm = Standin(tmp)
    sup, rc = drain_until_exit(tmp, url, llm, 1, "--max-attempts-per-phase", 2,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    attempts = rows(url, "SELECT failure_reason, message FROM attempts "
                    "ORDER BY attempt_number")
    assert [a["failure_reason"] for a in attempts] == ["CHECK_FAILED", "WRITE_FAILED"], \
        (attempts, sup.stderr())
    assert attempts[1]["message"] == (
        'path "out/mod.py": symlink out leads into the .autopack directory, which is '
        'reserved (-> .autopack/logs/mod.py); not sent to the LLM'), attempts
    assert len(llm.requests()) == 1, llm.requests()
    assert not os.path.exists(os.path.join(ws, ".autopack", "logs", "mod.py"))
    assert sorted(os.listdir(os.path.join(ws, ".autopack", "logs"))) == [
        "run__p1__a1.stderr.txt", "run__p1__a1.stdout.txt"], sup.stderr()


# The first attempt's check leaves a FIFO or a socket where the deliverable goes and fails.
PLANT_SPECIAL = {
    "FIFO": "mkfifo out/mod.py",
    "socket": "python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"out/mod.py\")'",
}


def planted_then_retried(tmp, plant):
    """Drain one phase of deliverable out/mod.py whose first attempt's check runs `plant`
    and fails, the second's passes; return the two attempts' rows and the stand-in."""
    ws = os.path.join(tmp, "ws")
    url = init_db(tmp)
    check = ("if [ -e .planted ]; then exit 0; fi; touch .planted; rm -f out/mod.py; %s; "
             "exit 1" % plant)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", ("out/mod.py",), check=check)])])
    llm = Standin(tmp)
    sup, rc = drain_until_exit(tmp, url, llm, 1, "--max-attempts-per-phase", 2,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    got = rows(url, "SELECT outcome, failure_reason, message FROM attempts "
                    "ORDER BY attempt_number")
    assert [(r["outcome"], r["failure_reason"]) for r in got] == [
        ("failed", "CHECK_FAILED"), ("failed", "WRITE_FAILED")], got
    return got, llm


@pytest.mark.parametrize("kind", sorted(PLANT_SPECIAL))
def test_a_special_file_at_a_deliverables_path_fails_the_next_attempt_before_its_call(tmp, kind):
    """A FIFO or a socket a check left at a deliverable's path was found only once the
    answer was paid for, and the attempt failed SCOPE_VIOLATION, `is not a regular file`,
    as if the path were out of scope. It is in the way as a directory there is: the next
    attempt fails WRITE_FAILED before its LLM call, naming what it is."""
    got, llm = planted_then_retried(str(tmp), PLANT_SPECIAL[kind])
    assert got[1]["message"] == (
        'path "out/mod.py": out/mod.py is a %s in the workspace, not a regular file (a check '
        'command or another program made it): remove it; not sent to the LLM' % kind), got
    assert len(llm.requests()) == 1, llm.requests()


# The first attempt's check leaves a symbolic link leading out of the workspace where the
# deliverable goes, or in place of its directory, and fails.
PLANT_OUT = {
    "file": ("ln -s /etc/passwd out/mod.py", "symlink out/mod.py leaves the workspace "
             "(-> /etc/passwd)"),
    "directory": ("rm -rf out; ln -s /etc out", "symlink out leaves the workspace (-> /etc)"),
}


@pytest.mark.parametrize("kind", sorted(PLANT_OUT))
def test_a_symlink_out_of_the_workspace_at_a_deliverables_path_fails_before_the_call(
        tmp, kind):
    """A symbolic link a check left at a deliverable's path, or on it, leading out of the
    workspace was found only once the answer was paid for (SCOPE_VIOLATION). No answer can
    write through it: the next attempt fails WRITE_FAILED before its LLM call, naming
    it."""
    plant, named = PLANT_OUT[kind]
    got, llm = planted_then_retried(str(tmp), plant)
    assert got[1]["message"] == 'path "out/mod.py": %s; not sent to the LLM' % named, got
    # The second attempt's request never reached the stand-in.
    assert len(llm.requests()) == 1, llm.requests()
