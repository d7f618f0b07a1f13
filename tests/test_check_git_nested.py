"""A check command cannot leave a repository of its own inside its workspace: a `.git` in a
subdirectory (`git init sub`, a `gitdir:` file), a bare repository's directory, or a
submodule registered through the index (a gitlink, mode 160000). Git run in that
subdirectory, or a `git status` that recurses into the submodule, reads that repository's
settings and runs what they name (core.fsmonitor, a hook) outside the check's confinement.
What the check made is moved to .autopack/quarantine, the gitlink is taken out of the index,
and the attempt fails SCOPE_VIOLATION; nested repositories and gitlinks that were there
before the check are left as they are. Likewise, without a mount namespace, a hook the
repository had that the check rewrote in place."""
import os
import shutil
import subprocess

import pytest

from e2e_helpers import checks_where, needs_namespaces
from test_check_git import check_drain, git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

Q = os.path.join(".autopack", "quarantine")


def repo(tmp, init=True):
    """A workspace, a repository with one commit unless not `init`; returns it and the
    commit's name ("" without one)."""
    ws = os.path.join(str(tmp), "ws")
    os.makedirs(ws)
    with open(os.path.join(ws, "one"), "w") as f:
        f.write("one\n")
    if not init:
        return ws, ""
    git(ws, "init", "-q")
    git(ws, "add", "one")
    git(ws, "commit", "-q", "-m", "one")
    return ws, git(ws, "rev-parse", "HEAD").strip()


FSMONITOR = "printf '[core]\\n\\tfsmonitor = touch %s\\n' >> %s/config"


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
@pytest.mark.parametrize("init", [True, False], ids=["in-a-repository", "no-repository"])
def test_a_repository_a_check_makes_in_a_subdirectory_is_moved_away(tmp, where, init):
    ws, _ = repo(tmp, init)
    pwned = os.path.join(str(tmp), "pwned")
    check = "git init -q out/sub && " + FSMONITOR % (pwned, "out/sub/.git")
    attempt = check_drain(tmp, ws, check, checks_where(where), outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command made a repository at out/sub/.git in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.nested-1" in attempt["message"], attempt
    assert not os.path.lexists(os.path.join(ws, "out", "sub", ".git"))
    assert os.path.isdir(os.path.join(ws, Q, "run__p1__a1.nested-1"))
    subprocess.run(["git", "-C", os.path.join(ws, "out", "sub"), "status"],
                   capture_output=True)
    assert not os.path.exists(pwned)


@pytest.mark.parametrize("how,at,bare", [
    ("git init -q --bare out/b.git", "out/b.git", True),
    ("mkdir -p deep/a/b && echo 'gitdir: /tmp/elsewhere' > deep/a/b/.git", "deep/a/b/.git",
     False),
    ("mkdir -p x && ln -s /tmp x/.git", "x/.git", False),
])
def test_a_bare_repository_a_gitdir_file_or_a_link_a_check_makes_is_moved_away(
        tmp, how, at, bare):
    ws, _ = repo(tmp)
    attempt = check_drain(tmp, ws, how, outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command made a repository at %s in the workspace%s, moved to " \
        ".autopack/quarantine/run__p1__a1.nested-1" % (at, " (a bare one)" if bare else "") \
        in attempt["message"], attempt
    assert not os.path.lexists(os.path.join(ws, at))


@pytest.mark.parametrize("where", ["namespaces", "no-namespace"])
def test_a_submodule_a_check_registers_through_the_index_is_taken_out(tmp, where):
    ws, head = repo(tmp)
    check = ("git update-index --add --cacheinfo 160000,%s,vendor/x && git init -q vendor/x"
             % head)
    attempt = check_drain(tmp, ws, check, checks_where(where), outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command added the submodule vendor/x to the index (a gitlink), taken " \
        "out of it" in attempt["message"], attempt
    assert "made a repository at vendor/x/.git" in attempt["message"], attempt
    assert "160000" not in git(ws, "ls-files", "-s")


def test_a_gitlink_in_an_index_of_version_4_is_found_too(tmp):
    """Index version 4 compresses each path against the one before it."""
    ws, head = repo(tmp)
    git(ws, "update-index", "--index-version", "4")
    check = ("git update-index --add --cacheinfo 100644,%s,aaa/one && "
             "git update-index --add --cacheinfo 160000,%s,aaa/two" % (
                 git(ws, "rev-parse", "HEAD:one").strip(), head))
    attempt = check_drain(tmp, ws, check, outcome="failed")
    assert "added the submodule aaa/two to the index" in attempt["message"], attempt
    assert "aaa/one" in git(ws, "ls-files")
    assert "aaa/two" not in git(ws, "ls-files")


def test_repositories_and_gitlinks_that_were_there_are_left_alone(tmp):
    ws, head = repo(tmp)
    git(ws, "init", "-q", os.path.join(ws, "lib", "sub"))
    git(ws, "init", "-q", "--bare", os.path.join(ws, "store.git"))
    git(ws, "update-index", "--add", "--cacheinfo", "160000,%s,vendor/x" % head)
    check_drain(tmp, ws, "echo ok > out.txt && git status --porcelain > status.txt")
    assert os.path.isdir(os.path.join(ws, "lib", "sub", ".git"))
    assert os.path.isdir(os.path.join(ws, "store.git"))
    assert "160000" in git(ws, "ls-files", "-s")


def test_without_a_mount_namespace_a_hook_rewritten_in_place_is_moved_away(tmp):
    """The hook keeps its inode and its directory its entries: only its own size and times
    tell it was written."""
    ws, _ = repo(tmp)
    hook = os.path.join(ws, ".git", "hooks", "post-checkout")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(hook, 0o755)
    info = os.path.join(ws, ".git", "info", "exclude")
    check = ("printf '#!/bin/sh\\ntouch pwned\\n' 1<> .git/hooks/post-checkout && "
             "echo '*.x' >> .git/info/exclude")
    attempt = check_drain(tmp, ws, check, checks_where("no-namespace"), outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command changed .git/hooks/post-checkout in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.git-hooks-post-checkout" in attempt["message"], \
        attempt
    assert "the check command changed .git/info/exclude in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.git-info-exclude" in attempt["message"], attempt
    assert not os.path.exists(hook) and not os.path.exists(info)
    assert os.path.isdir(os.path.join(ws, ".git", "hooks"))
    git(ws, "checkout", "-q", "-b", "x")
    assert not os.path.exists(os.path.join(ws, "pwned"))


def test_a_repository_nested_before_the_check_keeps_its_settings_and_hooks(tmp):
    """The operator's repository in a subdirectory: in the check's mount namespace its
    settings and hooks are read-only and its directory cannot be moved, as the top's are;
    a commit in it still goes."""
    needs_namespaces()
    ws, _ = repo(tmp)
    sub = os.path.join(ws, "lib", "sub")
    git(ws, "init", "-q", sub)
    config = open(os.path.join(sub, ".git", "config")).read()
    check = ("(echo '[core]' >> lib/sub/.git/config) 2>e1; "
             "(touch lib/sub/.git/hooks/post-checkout) 2>e2; (mv lib/sub/.git lib/x) 2>e3; "
             "git -C lib/sub -c user.name=c -c user.email=c@c commit -q --allow-empty -m c")
    check_drain(tmp, ws, check)
    for name, error in (("e1", "Read-only file system"), ("e2", "Read-only file system"),
                        ("e3", "busy")):
        assert error in open(os.path.join(ws, name)).read(), name
    assert open(os.path.join(sub, ".git", "config")).read() == config
    assert not os.path.exists(os.path.join(sub, ".git", "hooks", "post-checkout"))
    assert git(sub, "log", "--format=%s", "-1").strip() == "c"


def test_without_a_mount_namespace_a_hooks_directory_put_in_place_is_moved_away_whole(tmp):
    ws, _ = repo(tmp)
    check = ("mv .git/hooks .git/hooks-old && mkdir .git/hooks && "
             "printf '#!/bin/sh\\ntouch pwned\\n' > .git/hooks/post-checkout && "
             "chmod +x .git/hooks/post-checkout")
    attempt = check_drain(tmp, ws, check, checks_where("no-namespace"), outcome="failed")
    assert attempt["failure_reason"] == "SCOPE_VIOLATION", attempt
    assert "the check command changed .git/hooks in the workspace, moved to " \
        ".autopack/quarantine/run__p1__a1.git-hooks" in attempt["message"], attempt
    assert "removed .git/hooks/" not in attempt["message"], attempt
    assert not os.path.exists(os.path.join(ws, ".git", "hooks"))
