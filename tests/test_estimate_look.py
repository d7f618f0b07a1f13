"""The estimate looks at each deliverable's path in the workspace (est_open_under): a file
there costs by its size and lines as a change, a missing one as a new file. Where the
kernel, or a seccomp filter, refuses openat2 (ENOSYS), the look walks the path one
component at a time, following no symbolic link, and the worker says so once; before, every
look failed and every deliverable was estimated as new, silently."""
import json
import os

import pytest

from conftest import preload
from e2e_helpers import Standin, drain_until_exit, import_plan, init_db, phase_spec, rows

KEY = "sk-ant-estimate-look"
WARNING = ("openat2 is not available (ENOSYS: a kernel before 5.6, or a seccomp filter that "
           "refuses it): the estimate looks at deliverables one path component at a time "
           "instead, and follows no symbolic link, so a deliverable reached through one (even "
           "within the workspace) is estimated as a new file")
MOD = "import os\nimport sys\n\n\ndef main():\n    return os.getcwd()\n"


@pytest.mark.parametrize("openat2", ["present", "enosys"])
def test_an_existing_deliverable_is_estimated_as_a_change_with_or_without_openat2(tmp,
                                                                                   openat2):
    tmp = str(tmp)
    ws = os.path.join(tmp, "ws")
    os.makedirs(os.path.join(ws, "out", "pkg"))
    with open(os.path.join(ws, "out", "pkg", "mod.py"), "w") as f:
        f.write(MOD)
    os.symlink("pkg/mod.py", os.path.join(ws, "out", "alias.py"))
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec(
        "p1", ("out/pkg/mod.py", "out/new.py", "out/alias.py"))])])
    shim_log = os.path.join(tmp, "enosys.log")
    env = {"ANTHROPIC_API_KEY": KEY}
    if openat2 == "enosys":
        env = preload("enosys-shim.so", AUTOPACK_ENOSYS="openat2", AUTOPACK_ENOSYS_LOG=shim_log,
                      **env)
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1, env=env)
    err = sup.stderr()
    assert rc == 0, err
    [ev] = rows(url, "SELECT predicted_output_tokens, deliverables_detail_json"
                     " FROM token_estimation_v2_events")
    detail = json.loads(ev["deliverables_detail_json"])
    # The file is there, with its size; the new one is not.
    assert detail[:2] == [{"kind": "modify", "bytes": len(MOD)},
                          {"kind": "new", "bytes": None}], (detail, err)
    if openat2 == "present":
        # openat2 follows a link that stays in the workspace.
        assert detail[2] == {"kind": "modify", "bytes": len(MOD)}, detail
        assert "openat2" not in err, err
        return
    # Each look met ENOSYS, and went on without openat2, once said.
    with open(shim_log) as f:
        assert "enosys openat2\n" in f.read()
    assert detail[2] == {"kind": "new", "bytes": None}, detail
    assert err.count(WARNING) == 1, err


@pytest.mark.parametrize("given", ["directory", "symlink"])
def test_the_looks_before_the_call_see_the_workspace_however_it_is_named(tmp, given):
    """The worker opens the workspace once for its looks before the call (the estimate's,
    its own, the deliverables' paths): a workspace named by a symbolic link to its
    directory, which that open refuses (O_NOFOLLOW), is looked at by its path instead,
    and both see the same files and write the deliverables into the directory."""
    tmp = str(tmp)
    real = os.path.join(tmp, "real")
    os.makedirs(os.path.join(real, "out", "pkg"))
    with open(os.path.join(real, "out", "pkg", "mod.py"), "w") as f:
        f.write(MOD)
    ws = real
    if given == "symlink":
        ws = os.path.join(tmp, "ws")
        os.symlink(real, ws)
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", ("out/pkg/mod.py", "out/new.py"))])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}, "--expect-key", KEY), 1,
                               env={"ANTHROPIC_API_KEY": KEY})
    err = sup.stderr()
    assert rc == 0, err
    assert [a["outcome"] for a in rows(url, "SELECT outcome FROM attempts")] == ["success"]
    [ev] = rows(url, "SELECT deliverables_detail_json FROM token_estimation_v2_events")
    assert json.loads(ev["deliverables_detail_json"]) == [
        {"kind": "modify", "bytes": len(MOD)}, {"kind": "new", "bytes": None}], err
    assert os.path.isfile(os.path.join(real, "out", "new.py"))
    assert os.path.islink(ws) == (given == "symlink")
