"""A check command (and the code the model wrote, which it runs) takes only so much of the
machine: so many processes at once, so much memory a process, so large a private /tmp,
/var/tmp and /dev/shm, and the OOM killer takes its processes first. A fork bomb reached
the whole machine (1,500 processes of a check ran beside the supervisor), a process
allocated without end, and /dev/shm took up to half of the machine's memory; each now fails
its check, the attempt's message names the limit and its flag, and the drain goes on."""
import contextlib
import os
import resource
import shutil
import subprocess
import tempfile

import pytest

from conftest import binpath, run
from e2e_helpers import (Standin, another_user, checks_where, dir_outside_temp_dirs,
                         drain_until_exit, import_plan, init_db, needs_namespaces, phase_spec,
                         rows)
from supervisor_helpers import wait_for

KEY = {"ANTHROPIC_API_KEY": "sk-ant-check-limits"}

# Forks children that wait on a pipe until it has 2000 of them or fork fails; writes how
# many it had to forks.txt, and the error to stderr.
FORKS = r'''
import os, sys
r, w = os.pipe()
n = 0
try:
    while n < 2000:
        if os.fork() == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        n += 1
    err = None
except OSError as e:
    err = e
with open("forks.txt", "w") as f:
    f.write(str(n))
if err is not None:
    sys.exit("after %d processes: %s" % (n, err))
'''


def kernel_at_least(major, minor):
    release = os.uname().release.split(".")
    return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)


def drain_checks(tmp, checks, *flags, prefix=(), exe=None, owner=None, env=KEY):
    """Drain one run a check (`checks`: [(phase_id, command)]) and one more whose check
    passes, with `flags`, the supervisor `exe` run under `prefix` with `env`, its files
    given to the uid `owner` when named; return the workspace, the attempts by phase and
    the supervisor's log."""
    ws = os.path.join(tmp, "ws")
    os.makedirs(ws, exist_ok=True)
    url = init_db(tmp)
    import_plan(tmp, url, [("run-" + pid, ws, [phase_spec(pid, ("out/%s.py" % pid,),
                                                         check=cmd)])
                           for pid, cmd in checks + [("calm", "true")]])
    llm = Standin(tmp)
    if owner is not None:
        subprocess.run(["chown", "-R", "%d:%d" % (owner, owner), tmp], check=True)
    sup, rc = drain_until_exit(tmp, url, llm, 2, "--max-attempts-per-phase", 1, *flags,
                               env=env, prefix=prefix, exe=exe)
    assert rc in (0, 5), sup.stderr()
    att = {a["phase_id"]: a for a in rows(
        url, "SELECT phase_id, outcome, failure_reason, message FROM attempts")}
    assert att["calm"]["outcome"] == "success", att
    return ws, att, sup.stderr()


def test_a_fork_bomb_stops_at_the_checks_process_limit(tmp):
    needs_namespaces("pid")
    if os.geteuid() == 0 and not kernel_at_least(6, 14):
        pytest.skip("root's processes are limited by the PID namespace's pid_max, kept by "
                    "namespace from Linux 6.14 on")
    tmp = str(tmp)
    # In the workspace: a check whose workspace lies in a temporary directory sees nothing
    # else of it.
    os.makedirs(os.path.join(tmp, "ws"))
    with open(os.path.join(tmp, "ws", "forks.py"), "w") as f:
        f.write(FORKS)
    ws, att, err = drain_checks(tmp, [("forks", "/usr/bin/python3 %s/ws/forks.py" % tmp)],
                                "--check-max-processes", 64)
    a = att["forks"]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "CHECK_FAILED"), a
    assert "a check runs at most 64 processes and threads at once (--check-max-processes)" \
        in a["message"], a
    assert "Resource temporarily unavailable" in a["message"], a
    with open(os.path.join(ws, "forks.txt")) as f:
        forked = int(f.read())
    # Root is held by the namespace's pid_max (64 + 300: the pids below 300 are handed out
    # once only); another user by RLIMIT_NPROC, counted in its user namespace.
    assert 1 <= forked < (64 + 300 if os.geteuid() == 0 else 64), forked


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the drain as another user")
@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_an_ordinary_users_fork_bomb_stops_at_the_process_limit(where):
    # RLIMIT_NPROC, which holds an ordinary user: counted in the check's user namespace, or,
    # outside one, over all of the user's processes, the worker leaving the check 64 more
    # than it counts.
    prefix = checks_where(where)
    tmp = tempfile.mkdtemp(dir="/var/tmp", prefix="check-limits-")
    try:
        uid, as_user, exe = another_user(tmp)
        os.makedirs(os.path.join(tmp, "ws"))
        with open(os.path.join(tmp, "ws", "forks.py"), "w") as f:
            f.write(FORKS)
        # Its runtime directory of its own: outside a user namespace of its own it is root
        # (refused_namespaces_prefix), whose /tmp/autopack-0 is another's.
        run_dir = os.path.join(tmp, "run")
        os.mkdir(run_dir, 0o700)
        os.chmod(tmp, 0o755)
        ws, att, err = drain_checks(tmp, [("forks", "/usr/bin/python3 %s/ws/forks.py" % tmp)],
                                    "--check-max-processes", 64, prefix=as_user + prefix,
                                    exe=exe, owner=uid,
                                    env=dict(KEY, XDG_RUNTIME_DIR=run_dir))
        a = att["forks"]
        assert "a check runs at most 64 processes and threads at once " \
            "(--check-max-processes)" in a["message"], a
        with open(os.path.join(ws, "forks.txt")) as f:
            assert 1 <= int(f.read()) < 64
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_process_that_allocates_without_end_stops_at_the_checks_memory_limit(tmp, where):
    prefix = checks_where(where)
    alloc = "/usr/bin/python3 -c 'b = bytearray(1 << 30); open(\"alloc.txt\", \"w\")'"
    ws, att, err = drain_checks(str(tmp), [("alloc", alloc)], "--check-max-memory-mib", 256,
                                prefix=prefix)
    a = att["alloc"]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "CHECK_FAILED"), a
    assert "each process of a check allocates at most 256 MiB (--check-max-memory-mib)" \
        in a["message"], a
    assert "MemoryError" in a["message"], a
    assert not os.path.exists(os.path.join(ws, "alloc.txt"))


def test_a_check_fills_its_private_dev_shm_only_up_to_its_size(tmp):
    needs_namespaces()
    fill = "df -k /var/tmp > var-tmp.txt; head -c 16M /dev/zero > /dev/shm/big"
    ws, att, err = drain_checks(str(tmp), [("fill", fill)], "--check-tmp-size-mib", 8)
    a = att["fill"]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "CHECK_FAILED"), a
    assert "/dev/shm was full (a check's /tmp, /var/tmp and /dev/shm hold at most 8 MiB " \
        "each: --check-tmp-size-mib)" in a["message"], a
    assert "No space left on device" in a["message"], a
    # /var/tmp, which it did not fill, is as small.
    with open(os.path.join(ws, "var-tmp.txt")) as f:
        assert f.read().splitlines()[1].split()[1] == str(8 * 1024)


@pytest.fixture
def home_and_tmpdir():
    """A $HOME and a $TMPDIR outside the temporary directories, removed afterwards."""
    for home in dir_outside_temp_dirs("home"):
        for tmpdir in dir_outside_temp_dirs("tmpdir"):
            yield home, tmpdir


@pytest.mark.parametrize("where", ["tmpdir", "tmpdir_in_home", "tmpdir_is_home"])
def test_a_check_that_fills_its_own_tmpdir_is_told_which_and_its_size(tmp, home_and_tmpdir,
                                                                      where):
    # A check's $TMPDIR outside /tmp, /var/tmp and /dev/shm is a tmpfs of its own, as large
    # as those, and so is its $HOME when $TMPDIR lies in it or is it. Filled, the check
    # failed with `No space left on device` alone, the limit and its flag unnamed as the
    # others' are; its message now names which was full and its size.
    needs_namespaces()
    home, tmpdir = home_and_tmpdir
    if where == "tmpdir_in_home":
        tmpdir = os.path.join(home, "tmp")
        os.mkdir(tmpdir)
    elif where == "tmpdir_is_home":
        tmpdir = home
    fill = "dd if=/dev/zero of=$TMPDIR/x bs=1M count=16"
    ws, att, err = drain_checks(str(tmp), [("fill", fill)], "--check-tmp-size-mib", 8,
                                env=dict(KEY, HOME=home, TMPDIR=tmpdir))
    a = att["fill"]
    assert (a["outcome"], a["failure_reason"]) == ("failed", "CHECK_FAILED"), a
    named = {"tmpdir": "$TMPDIR (%s)" % tmpdir,
             "tmpdir_in_home": "$HOME (%s, which holds $TMPDIR)" % home,
             "tmpdir_is_home": "$HOME (%s, also $TMPDIR)" % home}[where]
    assert named + " was full (a check's /tmp, /var/tmp and /dev/shm, and its own $TMPDIR " \
        "(or the $HOME that holds it), hold at most 8 MiB each: --check-tmp-size-mib)" \
        in a["message"], a
    assert "No space left on device" in a["message"], a
    # It went with the check.
    assert not os.path.exists(os.path.join(tmpdir, "x"))


# Sends descriptors over Unix sockets and never receives them, until the kernel refuses
# more (its user's descriptors in flight past this process's limit of open files); writes
# how many it left in flight and waits, holding them, until the file "release" appears.
IN_FLIGHT = r'''
import errno, os, socket, time
n, err, pairs = 0, None, []
while err is None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    pairs.append((a, b))
    while True:
        try:
            socket.send_fds(a, [b"x"], [1] * 253)
            n += 253
        except BlockingIOError:
            break
        except OSError as e:
            err = e
            break
with open("in_flight.txt", "w") as f:
    f.write("%d %s" % (n, err.errno == errno.ETOOMANYREFS))
for _ in range(1200):
    if os.path.exists("release"):
        break
    time.sleep(0.05)
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the drain as another user")
def test_descriptors_a_check_leaves_in_flight_keep_no_new_worker_from_its_keys():
    # The kernel counts the descriptors in flight over Unix sockets by user, across every
    # namespace, and refuses a process one more while they pass its limit of open files:
    # a check of an ordinary user that left its limit's worth in flight had every new
    # worker refused its handoff to the supervisor ("Too many references"), five in a row
    # tripped the breaker, and the drain stopped. A check gets half the worker's limit.
    tmp = tempfile.mkdtemp(dir="/var/tmp", prefix="check-limits-")
    try:
        uid, as_user, exe = another_user(tmp)
        shutil.copy(binpath("autopack-ctl"), os.path.join(tmp, "bin"))
        ws = os.path.join(tmp, "ws")
        os.makedirs(ws)
        with open(os.path.join(ws, "in_flight.py"), "w") as f:
            f.write(IN_FLIGHT)
        run_dir = os.path.join(tmp, "run")
        os.mkdir(run_dir, 0o700)
        os.chmod(tmp, 0o755)
        url = init_db(tmp)
        import_plan(tmp, url, [
            ("run-a-hold", ws, [phase_spec("hold", ("out/hold.py",),
                                         check="/usr/bin/python3 in_flight.py")]),
            ("run-b-calm", ws, [phase_spec("calm", ("out/calm.py",), check="true")])])
        subprocess.run(["chown", "-R", "%d:%d" % (uid, uid), tmp], check=True)
        held = os.path.join(ws, "in_flight.txt")

        def scale_while_held(sup):
            wait_for(lambda: os.path.exists(held) and os.path.getsize(held) > 0, 60,
                     what="the check's descriptors in flight")
            r = subprocess.run(list(as_user) + [
                os.path.join(tmp, "bin", "autopack-ctl"), "--db", url, "scale", "2",
                "--control", sup.control], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r
            # The new worker takes the other run's phase (dispatched after the first, by run
            # id) while the check holds them.
            def calm_ended():
                assert "Too many references" not in sup.stderr(), sup.stderr()
                return rows(url, "SELECT 1 FROM attempts WHERE phase_id = 'calm' "
                                 "AND outcome IS NOT NULL")
            wait_for(calm_ended, 60, what="the other phase's end")
            open(os.path.join(ws, "release"), "w").close()

        sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, "--max-attempts-per-phase", 1,
                                   env=dict(KEY, XDG_RUNTIME_DIR=run_dir), prefix=as_user,
                                   exe=exe, during=scale_while_held)
        err = sup.stderr()
        assert rc == 0, err
        assert "Too many references" not in err, err
        att = {a["phase_id"]: a["outcome"] for a in rows(
            url, "SELECT phase_id, outcome FROM attempts")}
        assert att == {"hold": "success", "calm": "success"}, (att, err)
        with open(held) as f:
            n, refused = f.read().split()
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        # Refused a little past half the worker's limit (a message of 253 at most).
        assert refused == "True" and files // 2 < int(n) <= files // 2 + 253, (n, files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_checks_get_the_default_limits_and_the_oom_killers_first_choice(tmp, where):
    prefix = checks_where(where)
    probe = ("cat /proc/self/oom_score_adj > oom.txt; cat /proc/self/limits > limits.txt; "
             "cat /proc/sys/kernel/pid_max > pid_max.txt")
    ws, att, err = drain_checks(str(tmp), [("probe", probe)], prefix=prefix)
    assert att["probe"]["outcome"] == "success", att

    def read(name):
        with open(os.path.join(ws, name)) as f:
            return f.read().strip()
    # The OOM killer takes a check's processes before the supervisor or a worker, and
    # the check cannot lower that.
    assert read("oom.txt") == "1000"
    limits = {line[:26].strip(): line[26:].split()[:2]
              for line in read("limits.txt").splitlines()[1:]}
    quarter = (os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4 >> 20) << 20
    assert limits["Max data size"] == [str(quarter)] * 2, limits
    # Half the supervisor's limit of open files, which its workers inherit.
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert limits["Max open files"] == [str(files // 2)] * 2, limits
    if where == "namespaces":
        assert limits["Max processes"] == ["1024"] * 2, limits
        if kernel_at_least(6, 14):
            assert read("pid_max.txt") == str(1024 + 300)


@pytest.mark.parametrize("flag", ["--check-max-processes", "--check-max-memory-mib",
                                  "--check-tmp-size-mib"])
def test_a_bad_check_limit_is_refused_naming_the_flag(tmp, flag):
    r = run("autopack-supervisor", "--db", init_db(str(tmp)), flag, "-1")
    assert r.rc == 2, r
    assert "--%s: \"-1\" is not a whole number from 0" % flag.lstrip("-") in r.err, r
    r = run("autopack-worker", "--fd", "3", flag, "lots")
    assert r.rc == 2, r
    assert "%s: \"lots\" is not a whole number from 0 (no limit)" % flag in r.err, r


@contextlib.contextmanager
def small_tmpfs(path, mib):
    """A tmpfs of `mib` MiB mounted at directory `path`, made here; unmounted on leaving.
    Skips the test where mounting needs root."""
    os.mkdir(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % mib, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s); needs root" % r.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)


# Writes files into the workspace until the file system refuses, then fails.
FILL = ("i=0; while head -c 1048576 /dev/zero > out/fill-$i; do i=$((i+1)); done; "
        "echo filled the workspace >&2; exit 1")


@pytest.mark.parametrize("db_there", [False, True], ids=["own_fs", "database_fs"])
def test_a_check_that_fills_its_workspace_is_bounded_only_by_its_file_system(tmp, db_there):
    """No limit of a check bounds what it writes into its workspace (RLIMIT_FSIZE bounds one
    file, and only when the supervisor was started under one; nothing bounds the number of
    files or their total): it writes until the workspace's file system is full. On a file
    system of its own, the check fails naming its log, which could not be written whole,
    the run's next phase fails WRITE_FAILED, and the other runs and the supervisor go on. On
    the database's file system, the supervisor's commits fail too, and after its retries
    it gives up on the database (exit 3): workspaces need a file system of their own."""
    tmp = str(tmp)
    small = small_tmpfs(os.path.join(tmp, "small"), 8)
    with small:
        ws = os.path.join(tmp, "small", "ws")
        other = os.path.join(tmp, "other")
        for d in (ws, other):
            os.makedirs(os.path.join(d, "out"))
        url = init_db(os.path.join(tmp, "small") if db_there else tmp)
        import_plan(tmp, url, [
            ("r1", ws, [phase_spec("p1", check=FILL),
                        phase_spec("p2", deliverables=("out/two.py",))]),
            ("r2", other, [phase_spec("q1", check="true")])])
        sup, rc = drain_until_exit(tmp, url, Standin(tmp), 1, "--max-attempts-per-phase", 1,
                                   env=KEY)
        err = sup.stderr()
        got = {(a["phase_id"]): a for a in rows(
            url, "SELECT phase_id, outcome, failure_reason, message FROM attempts")}
        log = os.path.join(ws, ".autopack", "logs", "r1__p1__a1.stderr.txt")
        assert ("[FAIL] r1/p1 attempt 1: failed: CHECK_FAILED: check command exited 1 "
                "(stderr: %s, not all written: No space left on device (ENOSPC); it holds "
                % log) in err, err
        if not db_there:
            assert rc == 0, err
            assert got["p1"]["failure_reason"] == "CHECK_FAILED", got
            assert got["p1"]["message"].endswith("filled the workspace\n"), got["p1"]
            assert (got["p2"]["outcome"], got["p2"]["failure_reason"], got["p2"]["message"]) \
                == ("failed", "WRITE_FAILED",
                    'path "out/two.py": cannot write: No space left on device'), got
            assert got["q1"]["outcome"] == "success", got
        else:
            # The attempt's end could not be committed: left open, for the next supervisor
            # to recover.
            assert rc == 3, err
            assert "giving up on the database: 8 transactions failed in a row" in err, err
            assert "database or disk is full" in err, err
            assert got["p1"]["outcome"] is None, got
