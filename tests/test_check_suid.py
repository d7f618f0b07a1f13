"""No set-user-ID or set-group-ID file from a check command. Its code could make one in its
workspace (its own file, `chmod u+s`; `cp -p` of a set-user-ID program; a file created with
such a mode), owned by the drain's user, root when the drain runs as root: whoever reaches
the workspace afterwards ran it as that user. The worker kept such bits when it rewrote the
file. Now every call that would set either bit is refused (EPERM) in a check, the rest of
what it does with modes works, and the worker's rewrite drops both bits."""
import os
import stat

import pytest

from e2e_helpers import (Standin, checks_where, drain_until_exit, import_plan, init_db,
                         phase_spec, rows)
from test_check_kernel_objects import ATTEMPT, KEY, probe_drain

# Tries each way of making a set-user-ID or set-group-ID file, and the modes that stay
# allowed; records each call's result.
MODES = ATTEMPT + r'''
import shutil, subprocess, stat
open("own", "w").close()
attempt("chmod_suid", lambda: os.chmod("own", 0o4755) or "done")
attempt("chmod_sgid", lambda: os.chmod("own", 0o2755) or "done")
fd = os.open("own", os.O_RDONLY)
attempt("fchmod_suid", lambda: os.fchmod(fd, 0o4711) or "done")
os.close(fd)
attempt("open_suid", lambda: os.close(os.open("made", os.O_CREAT | os.O_WRONLY, 0o4755)) or "done")
attempt("open_sgid_dir_fd", lambda: os.close(os.open("made2", os.O_CREAT | os.O_WRONLY, 0o2755,
                                               dir_fd=os.open(".", os.O_RDONLY))) or "done")
attempt("chmod_plain", lambda: os.chmod("own", 0o750) or "done")
attempt("open_plain", lambda: os.close(os.open("plain", os.O_CREAT | os.O_WRONLY, 0o755)) or "done")
os.mkdir("shared")
attempt("chmod_sticky", lambda: os.chmod("shared", 0o1777) or "done")
cp = subprocess.run(["cp", "-p", "/usr/bin/passwd", "copied"], capture_output=True, text=True)
res["cp_rc"] = cp.returncode
res["modes"] = {n: oct(stat.S_IMODE(os.stat(n).st_mode)) for n in sorted(os.listdir("."))
                if not n.endswith(".py") and not n.endswith(".json")}
with open("probe.json", "w") as f:
    json.dump(res, f)
'''


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_check_makes_no_set_user_id_or_set_group_id_file(tmp, where):
    probe = probe_drain(tmp, MODES, prefix=checks_where(where))
    refused = "PermissionError: Operation not permitted"
    for call in ("chmod_suid", "chmod_sgid", "fchmod_suid", "open_suid", "open_sgid_dir_fd"):
        assert probe[call] == refused, (call, probe)
    for call in ("chmod_plain", "open_plain", "chmod_sticky"):
        assert probe[call] == "done", (call, probe)
    # cp -p copies the program and says it could not keep its mode.
    assert probe["cp_rc"] != 0, probe
    ws = os.path.join(str(tmp), "ws")
    for root, dirs, files in os.walk(ws):
        for name in dirs + files:
            mode = os.lstat(os.path.join(root, name)).st_mode
            assert not mode & (stat.S_ISUID | stat.S_ISGID), (name, oct(mode), probe)
    assert probe["modes"]["shared"] == "0o1777", probe
    assert probe["modes"]["own"] == "0o750", probe


def test_the_workers_rewrite_of_a_set_user_id_file_drops_the_bit(tmp):
    """A file already set-user-ID in the workspace (made before, by anyone): the worker's
    rewrite of it from the model's answer keeps its other permission bits, not that one."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    target = os.path.join(ws, "tool.sh")
    with open(target, "w") as f:
        f.write("old\n")
    os.chmod(target, 0o6755)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", deliverables=["tool.sh"], paths=["tool.sh"])])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               env={"ANTHROPIC_API_KEY": KEY})
    assert rc == 0, sup.stderr()
    assert [a["outcome"] for a in rows(url, "SELECT outcome FROM attempts")] == ["success"]
    st = os.stat(target)
    with open(target) as f:
        assert f.read() != "old\n"
    assert stat.S_IMODE(st.st_mode) == 0o755, oct(st.st_mode)
