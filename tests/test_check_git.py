"""A check command cannot leave its workspace's git repository something that runs outside
its confinement: a hook, a setting that runs a program (core.fsmonitor, core.hooksPath,
core.pager), a commondir or config.worktree that brings in another one, or a .git of its
own in the place of the operator's (renamed away, or replaced by a `gitdir:` file). The
next git command the operator ran in the workspace ran it, as the drain's user, with no
namespace, no limit and no filter. A check that commits still commits."""
import json
import os
import shutil
import subprocess

import pytest

from e2e_helpers import (Standin, checks_where, dir_outside_temp_dirs, drain_until_exit,
                         import_plan, init_db, needs_namespaces, phase_spec, rows)
from test_check_kernel_objects import KEY

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

# Each way of leaving the repository something that runs outside the check; records what
# each call did ("ok" or the error).
VECTORS = r'''
import json, os, subprocess, sys
res = {}
def attempt(name, fn):
    try:
        fn()
        res[name] = "ok"
    except (OSError, subprocess.CalledProcessError) as e:
        res[name] = "%s: %s" % (type(e).__name__, getattr(e, "strerror", None) or e)
def write(path, text):
    def go():
        with open(path, "w") as f:
            f.write(text)
    return go
def replace_dir():
    os.rename(".git", "old-git")
    os.mkdir(".git")
def gitdir_file():
    os.rename(".git", "old-git2")
    with open(".git", "w") as f:
        f.write("gitdir: /tmp/elsewhere\n")
def rm_git():
    import shutil
    shutil.rmtree(".git")
which = sys.argv[1]
if which == "hook":
    attempt(which, write(".git/hooks/post-checkout", "#!/bin/sh\ntouch pwned\n"))
    attempt("hook_new_dir", lambda: os.rename(".git/hooks", ".git/hooks-old"))
elif which == "config":
    attempt(which, write(".git/config", "[core]\n\tfsmonitor = touch pwned\n"))
    attempt("config_rename", lambda: (write(".git/config.new", "[core]\n\tpager = x\n")(),
                                      os.rename(".git/config.new", ".git/config")))
elif which == "commondir":
    attempt(which, write(".git/commondir", "/tmp/elsewhere\n"))
elif which == "config.worktree":
    attempt(which, write(".git/config.worktree", "[core]\n\tfsmonitor = touch pwned\n"))
elif which == "info":
    attempt(which, write(".git/info/attributes", "* filter=x\n"))
elif which == "replace":
    attempt(which, replace_dir)
elif which == "gitdir":
    attempt(which, gitdir_file)
elif which == "remove":
    attempt(which, rm_git)
elif which == "sabotage":
    # The quarantine taken first: a link to elsewhere, and the name the worker would use.
    os.symlink("/tmp", ".autopack/quarantine")
    attempt(which, write(".git/commondir", "/tmp/elsewhere\n"))
elif which == "occupied":
    os.makedirs(".autopack/quarantine/run__p1__a1.git-commondir/x")
    attempt(which, write(".git/commondir", "/tmp/elsewhere\n"))
elif which == "rebase":
    def todo():
        os.mkdir(".git/rebase-merge")
        with open(".git/rebase-merge/git-rebase-todo", "w") as f:
            f.write("exec touch pwned\n")
    attempt(which, todo)
elif which == "create":
    attempt(which, lambda: subprocess.run(["git", "init", "-q"], check=True))
with open("probe.json", "w") as f:
    json.dump(res, f)
'''


def git(ws, *args):
    return subprocess.run(["git", "-C", ws, "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout


def check_drain(tmp, ws, check, prefix=(), outcome="success"):
    """Drain one phase whose check runs `check` in workspace `ws`; return its attempt's
    row, whose outcome must be `outcome`."""
    url = init_db(tmp)
    import_plan(tmp, url, [("run", ws, [phase_spec("p1", check=check)])])
    sup, rc = drain_until_exit(tmp, url, Standin(tmp, {}), 1, "--max-attempts-per-phase", 1,
                               env={"ANTHROPIC_API_KEY": KEY}, prefix=prefix)
    attempts = rows(url, "SELECT outcome, failure_reason, message FROM attempts")
    assert [a["outcome"] for a in attempts] == [outcome], (attempts, sup.stderr())
    assert rc == 0, sup.stderr()
    return attempts[0]


def repo_drain(tmp, check, init=True, prefix=(), outcome="success", top=None):
    """Drain one phase whose check runs `check` in a workspace (in `top`, else `tmp`) that
    is a git repository with one commit (or, without `init`, none); return the attempt's
    row, the probe's record ({} when it left none) and the workspace."""
    ws = os.path.join(str(top or tmp), "ws")
    os.makedirs(ws)
    with open(os.path.join(ws, "probe.py"), "w") as f:
        f.write(VECTORS)
    if init:
        git(ws, "init", "-q")
        git(ws, "add", "probe.py")
        git(ws, "commit", "-q", "-m", "first")
    attempt = check_drain(tmp, ws, check, prefix, outcome)
    probe = {}
    if os.path.exists(os.path.join(ws, "probe.json")):
        with open(os.path.join(ws, "probe.json")) as f:
            probe = json.load(f)
    return attempt, probe, ws


def snapshot(ws):
    """The repository's control files: path -> bytes, and .git's inode."""
    top = os.path.join(ws, ".git")
    out = {".git": os.lstat(top).st_ino}
    for root, dirs, files in os.walk(top):
        rel = os.path.relpath(root, top)
        if rel.split(os.sep)[0] in ("objects", "refs", "logs"):
            continue
        for name in files:
            if name in ("index", "COMMIT_EDITMSG", "ORIG_HEAD"):
                continue
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.join(rel, name)] = f.read()
    return out


def pwned(ws):
    """Run git in the workspace as the operator would; whether what the check left ran."""
    subprocess.run(["git", "-C", ws, "status"], capture_output=True)
    subprocess.run(["git", "-C", ws, "log", "-1"], capture_output=True)
    return os.path.exists(os.path.join(ws, "pwned"))


@pytest.mark.parametrize("vector", ["hook", "config", "info"])
def test_a_check_cannot_write_the_repositorys_hooks_settings_or_info(tmp, vector):
    needs_namespaces()
    ws = os.path.join(str(tmp), "ws")
    attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py " + vector)
    assert probe[vector] == "OSError: Read-only file system", probe
    for key in ("hook_new_dir", "config_rename"):
        if key in probe:
            assert probe[key] != "ok", probe
    assert not os.path.exists(os.path.join(ws, ".git", "hooks", "post-checkout"))
    assert "fsmonitor" not in open(os.path.join(ws, ".git", "config")).read()
    assert not pwned(ws)


@pytest.mark.parametrize("vector", ["hook", "config", "replace"])
def test_a_workspace_outside_the_temporary_directories_keeps_its_repository_too(tmp, vector):
    """The workspace bound where it is (under /srv, say), not made in a private /tmp."""
    needs_namespaces()
    for top in dir_outside_temp_dirs("gitws"):
        attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py " + vector, top=top)
        assert probe[vector] in ("OSError: Read-only file system",
                                 "OSError: Device or resource busy"), probe
        assert os.path.isdir(os.path.join(ws, ".git"))
        assert not pwned(ws)


@pytest.mark.parametrize("vector", ["replace", "gitdir", "remove"])
def test_a_check_cannot_replace_remove_or_rename_the_repository(tmp, vector):
    needs_namespaces()
    attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py " + vector)
    # .git is a mount point in the check's namespace: neither renamed nor removed (what
    # it holds that a commit writes may be).
    assert probe[vector] == "OSError: Device or resource busy", probe
    assert os.path.isdir(os.path.join(ws, ".git"))
    assert not os.path.exists(os.path.join(ws, "old-git"))
    assert not pwned(ws)


@pytest.mark.parametrize("vector", ["commondir", "config.worktree"])
def test_a_check_that_makes_a_commondir_or_config_worktree_fails_and_it_is_moved_away(
        tmp, vector):
    needs_namespaces()
    attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py " + vector,
                                    outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    quarantined = "run__p1__a1.git-" + vector
    assert ("the check command made .git/%s in the workspace, moved to "
            ".autopack/quarantine/%s" % (vector, quarantined)) in attempt["message"], attempt
    assert "outside the check's confinement" in attempt["message"], attempt
    assert not os.path.exists(os.path.join(ws, ".git", vector))
    assert os.path.exists(os.path.join(ws, ".autopack", "quarantine", quarantined))
    assert not pwned(ws)


@pytest.mark.parametrize("vector,where", [
    ("sabotage", "run__p1__a1.git-commondir"), ("occupied", "run__p1__a1.git-commondir.1")])
def test_a_check_cannot_keep_what_it_made_from_the_quarantine(tmp, vector, where):
    """A check that puts a link in place of .autopack/quarantine, or takes the name its
    commondir would get there, still has it moved away."""
    needs_namespaces()
    attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py " + vector,
                                    outcome="failed")
    assert probe[vector] == "ok", probe
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "moved to .autopack/quarantine/%s " % where in attempt["message"], attempt
    q = os.path.join(ws, ".autopack", "quarantine")
    assert os.path.isdir(q) and not os.path.islink(q)
    assert os.path.isfile(os.path.join(q, where))
    assert not os.path.exists(os.path.join(ws, ".git", "commondir"))


def test_a_check_that_leaves_a_rebase_in_progress_fails_and_its_todo_is_moved_away(tmp):
    """`git rebase --continue` runs the `exec` lines of .git/rebase-merge/git-rebase-todo:
    a check that left one had the operator's next `--continue` run it."""
    needs_namespaces()
    attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py rebase", outcome="failed")
    assert probe["rebase"] == "ok", probe
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command made .git/rebase-merge in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.git-rebase-merge" in attempt["message"], attempt
    assert not os.path.exists(os.path.join(ws, ".git", "rebase-merge"))


def test_a_check_that_makes_a_git_where_there_was_none_fails_and_it_is_moved_away(tmp):
    needs_namespaces()
    attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py create", init=False,
                                    outcome="failed")
    assert probe["create"] == "ok", probe
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert ("the check command made .git in the workspace, where there was none, moved to "
            ".autopack/quarantine/run__p1__a1.git") in attempt["message"], attempt
    assert not os.path.exists(os.path.join(ws, ".git"))
    assert os.path.isdir(os.path.join(ws, ".autopack", "quarantine", "run__p1__a1.git"))


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_check_that_commits_in_the_workspace_still_commits(tmp, where):
    check = ("git -c user.name=c -c user.email=c@c add -A && "
             "git -c user.name=c -c user.email=c@c commit -q -m 'by the check' && "
             "git log --format=%s -1 > last.txt")
    attempt, probe, ws = repo_drain(tmp, check, prefix=checks_where(where))
    assert open(os.path.join(ws, "last.txt")).read().strip() == "by the check"
    assert git(ws, "log", "--format=%s", "-1").strip() == "by the check"
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_linked_worktree_in_the_workspace_keeps_its_gitdir_file_and_repository(tmp):
    """A workspace whose .git is a `gitdir:` file naming a repository inside it: the file
    and that repository's settings are read-only to the check."""
    needs_namespaces()
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    repo = os.path.join(ws, "repo.git")
    subprocess.run(["git", "init", "-q", "--bare", repo], check=True)
    with open(os.path.join(ws, ".git"), "w") as f:
        f.write("gitdir: repo.git\n")
    check = ("(echo x > .git) 2>e1; (echo '[core]' >> repo.git/config) 2>e2; "
             "(mv repo.git moved) 2>e3; true")
    check_drain(tmp, ws, check)
    assert open(os.path.join(ws, ".git")).read() == "gitdir: repo.git\n"
    for name, error in (("e1", "Read-only file system"), ("e2", "Read-only file system"),
                        ("e3", "busy")):
        assert error in open(os.path.join(ws, name)).read(), name
    assert os.path.isdir(repo)


def test_a_workspace_whose_git_is_a_link_keeps_the_repository_it_leads_to(tmp):
    """.git a symbolic link to a repository elsewhere in the workspace: git follows it, and
    that repository's settings are read-only to the check; the link it puts in its place
    fails the attempt."""
    needs_namespaces()
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    git(ws, "init", "-q", "--separate-git-dir", os.path.join(ws, "real.git"))
    os.remove(os.path.join(ws, ".git"))
    os.symlink("real.git", os.path.join(ws, ".git"))
    check = ("(echo '[core]' >> .git/config) 2>e1; (touch real.git/hooks/pre-commit) 2>e2; "
             "rm .git && ln -s elsewhere.git .git")
    attempt = check_drain(tmp, ws, check, outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "put another .git in place of the workspace's" in attempt["message"], attempt
    for name in ("e1", "e2"):
        assert "Read-only file system" in open(os.path.join(ws, name)).read(), name
    assert not os.path.lexists(os.path.join(ws, ".git"))


@pytest.mark.parametrize("vector", ["replace", "gitdir"])
def test_without_a_mount_namespace_another_git_is_found_after_the_check(tmp, vector):
    """Where the kernel refuses the check a mount namespace nothing is pinned: a .git put
    in place of the workspace's still fails the attempt and is moved away."""
    attempt, probe, ws = repo_drain(tmp, "/usr/bin/python3 probe.py " + vector,
                                    prefix=checks_where("no-namespace"), outcome="failed")
    assert probe[vector] == "ok", probe
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "put another .git in place of the workspace's (the one that was there is not " \
        "put back), moved to .autopack/quarantine/run__p1__a1.git" in attempt["message"], \
        attempt
    assert not os.path.lexists(os.path.join(ws, ".git"))


def test_hooks_a_check_makes_where_the_repository_had_none_are_moved_away(tmp):
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    # No template: no hooks directory to pin.
    git(ws, "init", "-q", "--template=")
    assert not os.path.exists(os.path.join(ws, ".git", "hooks"))
    check = "mkdir .git/hooks && echo 'touch pwned' > .git/hooks/post-checkout"
    attempt = check_drain(tmp, ws, check, outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "made .git/hooks in the workspace, moved to .autopack/quarantine/" \
        "run__p1__a1.git-hooks" in attempt["message"], attempt
    assert not os.path.exists(os.path.join(ws, ".git", "hooks"))


def test_a_check_that_replaces_a_linked_config_fails_and_its_file_is_moved_away(tmp):
    """.git/config a symbolic link (to a file in .git): a link cannot be bound read-only,
    and the file a check puts in its place is found after it."""
    needs_namespaces()
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    git(ws, "init", "-q")
    os.rename(os.path.join(ws, ".git", "config"), os.path.join(ws, ".git", "config.real"))
    os.symlink("config.real", os.path.join(ws, ".git", "config"))
    check = "rm .git/config && printf '[core]\\n\\tfsmonitor = touch pwned\\n' > .git/config"
    attempt = check_drain(tmp, ws, check, outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command changed .git/config in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.git-config" in attempt["message"], attempt
    assert not os.path.lexists(os.path.join(ws, ".git", "config"))
    assert not pwned(ws)


def test_without_a_mount_namespace_a_setting_a_check_writes_is_found_after_it(tmp):
    check = "git config core.fsmonitor 'touch pwned'"
    attempt, probe, ws = repo_drain(tmp, check, prefix=checks_where("no-namespace"),
                                    outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command changed .git/config in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.git-config" in attempt["message"], attempt
    assert "fsmonitor" in open(os.path.join(
        ws, ".autopack", "quarantine", "run__p1__a1.git-config")).read()
    assert not pwned(ws)
