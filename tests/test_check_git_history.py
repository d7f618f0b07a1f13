"""A check command cannot rewrite its workspace repository's history: a ref moved to a
commit that does not descend from the one it named (`git commit --amend`, `git reset --hard
HEAD~1`, `git update-ref`, a file written into .git/refs or packed-refs), a ref removed,
HEAD pointed elsewhere, a replace ref made. Each is put back and the attempt fails
SCOPE_VIOLATION, with a mount namespace or without one; a check that adds commits on top of
its branch still commits. The git the worker runs for this turns off every setting of the
repository that runs a program (hooks, core.hooksPath, core.fsmonitor, filters)."""
import os
import shutil
import subprocess

import pytest

from e2e_helpers import checks_where
from test_check_git import check_drain, git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

C = "git -c user.name=c -c user.email=c@c "


def two_commits(tmp):
    """A workspace that is a repository on branch `main` with two commits; returns it and
    the commits' names, oldest first."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    git(ws, "init", "-q", "-b", "main")
    for n in ("one", "two"):
        with open(os.path.join(ws, n), "w") as f:
            f.write(n + "\n")
        git(ws, "add", n)
        git(ws, "commit", "-q", "-m", n)
    return ws, git(ws, "rev-list", "--reverse", "HEAD").split()


REWRITES = {
    "amend": C + "commit -q --amend -m amended",
    "reset": C + "reset -q --hard HEAD~1",
    "update-ref": C + "update-ref refs/heads/main HEAD~1",
    "write-ref": "h=$(git rev-parse HEAD~1) && echo $h > .git/refs/heads/main",
    "garbage-ref": "echo HEAD~1 > .git/refs/heads/main",
    "packed-refs": ("printf '%s refs/heads/main\\n' $(git rev-parse HEAD~1) > .git/packed-refs"
                    " && rm -f .git/refs/heads/main"),
    "orphan": (C + "checkout -q --orphan other && " + C + "commit -q -m new && "
               + C + "branch -f main other && git checkout -q main"),
}


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
@pytest.mark.parametrize("how", sorted(REWRITES))
def test_a_check_that_rewrites_a_branch_fails_and_the_branch_is_put_back(tmp, how, where):
    ws, commits = two_commits(tmp)
    attempt = check_drain(tmp, ws, REWRITES[how], checks_where(where), outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    if how == "garbage-ref":
        assert "the check command changed refs/heads/main from %s to HEAD~1, put back" % (
            commits[1]) in attempt["message"], attempt
    else:
        assert "the check command rewrote refs/heads/main from %s to " % commits[1] \
            in attempt["message"], attempt
        assert "which does not descend from it, put back" in attempt["message"], attempt
    assert "not rewrite history" in attempt["message"], attempt
    assert git(ws, "rev-parse", "refs/heads/main").strip() == commits[1]
    assert git(ws, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_check_that_removes_a_branch_or_moves_head_fails_and_they_are_put_back(tmp, where):
    ws, commits = two_commits(tmp)
    git(ws, "branch", "keep", commits[0])
    check = C + "branch -q -D keep && " + C + "checkout -q -b elsewhere"
    attempt = check_drain(tmp, ws, check, checks_where(where), outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command moved HEAD from ref: refs/heads/main to ref: " \
        "refs/heads/elsewhere, put back" in attempt["message"], attempt
    assert "the check command removed refs/heads/keep (%s), put back" % commits[0] \
        in attempt["message"], attempt
    assert git(ws, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(ws, "rev-parse", "refs/heads/keep").strip() == commits[0]


def test_a_check_that_makes_a_replace_ref_fails_and_it_is_removed(tmp):
    """`git replace` has git show one commit in place of another: the history read is not
    the one recorded."""
    ws, commits = two_commits(tmp)
    attempt = check_drain(tmp, ws, "git replace %s %s" % (commits[1], commits[0]),
                          outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command made refs/replace/%s (git shows that object in place of the " \
        "one it names), put back" % commits[1] in attempt["message"], attempt
    assert git(ws, "replace", "-l").strip() == ""


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_check_may_commit_branch_pack_refs_and_stash(tmp, where):
    """What adds history and leaves the refs that were there where they were, or further
    on, passes."""
    ws, commits = two_commits(tmp)
    check = ("echo three > three && " + C + "add three && " + C + "commit -q -m three && "
             + C + "branch topic && git pack-refs --all && echo x >> one && "
             + C + "stash -q && " + C + "stash pop -q && "
             + C + "checkout -q topic && " + C + "checkout -q main && git checkout -q -- one")
    check_drain(tmp, ws, check, checks_where(where))
    assert git(ws, "rev-parse", "HEAD~1").strip() == commits[1]
    assert git(ws, "log", "--format=%s", "-1").strip() == "three"
    assert git(ws, "rev-parse", "topic").strip() == git(ws, "rev-parse", "main").strip()


def test_a_check_in_a_detached_head_may_move_it_forward_only(tmp):
    ws, commits = two_commits(tmp)
    git(ws, "checkout", "-q", "--detach", commits[0])
    check_drain(tmp, ws, C + "checkout -q --detach " + commits[1])
    assert git(ws, "rev-parse", "HEAD").strip() == commits[1]
    again = tmp / "again"
    again.mkdir()
    attempt = check_drain(again, ws, C + "checkout -q --detach " + commits[0],
                          outcome="failed")
    assert "the check command moved HEAD from %s to %s, which does not descend from it" % (
        commits[1], commits[0]) in attempt["message"], attempt
    assert git(ws, "rev-parse", "HEAD").strip() == commits[1]


def marker_repo(tmp):
    """A two-commit repository whose own settings run a program of its working tree that
    writes a marker outside the workspace: core.hooksPath (.husky, with every hook git runs
    on a ref's change), core.fsmonitor, a clean and a smudge filter, diff.external. Returns
    the workspace, the commits and the marker's path."""
    ws, commits = two_commits(tmp)
    marker = os.path.join(str(tmp), "marker")
    husky = os.path.join(ws, ".husky")
    os.makedirs(husky)
    script = "#!/bin/sh\necho \"$0 $*\" >> %s\ncat\n" % marker
    for name in ("reference-transaction", "post-checkout", "post-commit", "pre-commit",
                 "post-index-change", "run"):
        path = os.path.join(husky, name)
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o755)
    run = os.path.join(husky, "run")
    for key, value in (("core.hooksPath", ".husky"), ("core.fsmonitor", run),
                       ("filter.x.clean", run), ("filter.x.smudge", run),
                       ("filter.x.process", run), ("diff.external", run),
                       ("core.sshCommand", run), ("core.pager", run)):
        git(ws, "config", key, value)
    with open(os.path.join(ws, ".gitattributes"), "w") as f:
        f.write("* filter=x diff=x\n")
    # A file whose time is past the index's stays "racily clean": git hashes it again,
    # through its filter, each time it writes the index.
    os.utime(os.path.join(ws, "one"), (2000000000, 2000000000))
    subprocess.run(["git", "-C", ws, "-c", "core.hooksPath=/dev/null", "-c",
                    "filter.x.process=", "-c", "filter.x.clean=", "update-index", "one"],
                   check=True)
    return ws, commits, marker


def test_the_git_the_worker_runs_runs_nothing_the_repositorys_settings_name(tmp):
    """The check rewrites the branch and adds a submodule with every setting turned off on
    its own command line; the worker then runs git to tell, put the branch back and take the
    submodule out: nothing the repository names runs."""
    ws, commits, marker = marker_repo(tmp)
    # The settings are live: git run plainly there runs them, on a ref's change and on
    # taking an entry out of the index.
    subprocess.run(["git", "-C", ws, "update-ref", "refs/heads/probe", commits[0]],
                   check=True, capture_output=True)
    assert os.path.exists(marker)
    subprocess.run(["git", "-C", ws, "-c", "core.hooksPath=/dev/null", "update-ref", "-d",
                    "refs/heads/probe"], check=True)
    os.remove(marker)
    subprocess.run(["git", "-C", ws, "-c", "core.hooksPath=/dev/null", "update-index",
                    "--force-remove", "--", "two"], capture_output=True)
    assert os.path.exists(marker)
    subprocess.run(["git", "-C", ws, "-c", "core.hooksPath=/dev/null", "-c",
                    "filter.x.process=", "-c", "filter.x.clean=", "add", "two"], check=True)
    os.remove(marker)
    off = ("git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c filter.x.clean= "
           "-c filter.x.smudge= -c filter.x.process= -c user.name=c -c user.email=c@c ")
    check = (off + "update-ref refs/heads/main HEAD~1 && " + off +
             "update-index --add --cacheinfo 160000,%s,vendor/x" % commits[0])
    attempt = check_drain(tmp, ws, check, checks_where("no-namespace"), outcome="failed")
    assert "rewrote refs/heads/main" in attempt["message"], attempt
    assert "added the submodule vendor/x to the index (a gitlink), taken out of it" \
        in attempt["message"], attempt
    assert not os.path.exists(marker), open(marker).read()
    assert git(ws, "-c", "core.hooksPath=/dev/null", "rev-parse", "main").strip() == commits[1]


def test_a_check_that_makes_a_shallow_file_fails_and_it_is_moved_away(tmp):
    """.git/shallow names the commits past which git reads no history: made by a check, it
    hides the repository's history."""
    ws, commits = two_commits(tmp)
    attempt = check_drain(tmp, ws, "echo %s > .git/shallow" % commits[1], outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command made .git/shallow in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.git-shallow" in attempt["message"], attempt
    assert git(ws, "rev-list", "--count", "HEAD").strip() == "2"


def test_refs_listed_through_git_are_compared_too(tmp):
    """A repository whose refs are in a reftable has them listed by git (for-each-ref,
    symbolic-ref): a directory of that name makes the worker list them so, and a
    rewrite is found and put back the same."""
    ws, commits = two_commits(tmp)
    os.mkdir(os.path.join(ws, ".git", "reftable"))
    attempt = check_drain(tmp, ws, C + "commit -q --amend -m amended && " + C +
                          "checkout -q -b elsewhere", outcome="failed")
    assert "the check command rewrote refs/heads/main from %s to " % commits[1] \
        in attempt["message"], attempt
    assert "the check command moved HEAD from ref: refs/heads/main to ref: " \
        "refs/heads/elsewhere, put back" in attempt["message"], attempt
    assert git(ws, "rev-parse", "main").strip() == commits[1]
    assert git(ws, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
