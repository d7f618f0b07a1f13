"""make install and uninstall into a DESTDIR; --version and -h of the three binaries; the
man pages render and cover every flag and command; the systemd unit passes systemd's own
verifier; the bash completion, generated from autopack-ctl's command table, completes
commands and offers only options the commands take."""
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import BIN, ROOT, ctl, run

PREFIX = "/usr/local"
INSTALLED = {
    "bin/autopack-supervisor": 0o711, "bin/autopack-worker": 0o711, "bin/autopack-ctl": 0o755,
    "share/man/man1/autopack-supervisor.1": 0o644, "share/man/man1/autopack-ctl.1": 0o644,
    "share/man/man7/autopack.7": 0o644,
    "share/bash-completion/completions/autopack-ctl": 0o644,
    "lib/systemd/system/autopack-supervisor@.service": 0o644,
}
MAN = os.path.join(ROOT, "docs", "man")


def make(*args):
    """Run make in the source tree on the build the tests use."""
    env = dict(os.environ)
    out_dir = os.path.dirname(BIN)
    cmd = ["make", "-s", "-C", ROOT, "O=" + out_dir] + list(args)
    if os.environ.get("AUTOPACK_SANITIZE") == "1":
        cmd.append("SANITIZE=1")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def files_under(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, fs in os.walk(top) for f in fs)


def test_make_install_and_uninstall(tmp):
    dest = str(tmp / "root")
    r = make("install", "DESTDIR=" + dest, "PREFIX=" + PREFIX)
    assert r.returncode == 0, r.stderr
    top = dest + PREFIX
    assert files_under(dest) == sorted(os.path.join(PREFIX[1:], f) for f in INSTALLED)
    for f, mode in INSTALLED.items():
        assert stat.S_IMODE(os.stat(os.path.join(top, f)).st_mode) == mode, f
    for b in ("autopack-supervisor", "autopack-worker", "autopack-ctl"):
        v = subprocess.run([os.path.join(top, "bin", b), "--version"], capture_output=True,
                           text=True)
        assert v.returncode == 0 and v.stdout == "%s 0.1.0\n" % b, v
    unit = open(os.path.join(top, "lib/systemd/system/autopack-supervisor@.service")).read()
    assert "ExecStart=%s/bin/autopack-supervisor " % PREFIX in unit
    assert "@BINDIR@" not in unit
    comp = open(os.path.join(top, "share/bash-completion/completions/autopack-ctl")).read()
    assert comp == ctl("completion", "bash").out
    # The installed supervisor runs the installed worker, beside it.
    url = "sqlite:///" + str(tmp / "d.db")
    assert ctl("--db", url, "db", "init").rc == 0
    assert ctl("--db", url, "seed", "telemetry-run", "--workspace", str(tmp / "ws")).rc == 0
    p = subprocess.run([os.path.join(top, "bin", "autopack-supervisor"), "--db", url,
                        "--dry-run", "--exit-when-drained", "--workers", "1",
                        "--control", str(tmp / "c.sock")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    workers = re.findall(r"worker 1 started \(pid (\d+)\)", p.stderr)
    assert workers, p.stderr

    r = make("uninstall", "DESTDIR=" + dest, "PREFIX=" + PREFIX)
    assert r.returncode == 0, r.stderr
    assert files_under(dest) == []


def test_each_install_names_its_own_prefix_in_the_unit(tmp):
    """Installing again with another PREFIX (a staged package, then the real one) gives a
    unit that runs the supervisor of that prefix, not of the one installed before."""
    for prefix in ("/opt/stage", "/usr/local", "/opt/stage"):
        dest = str(tmp / "root")
        shutil.rmtree(dest, ignore_errors=True)
        r = make("install", "DESTDIR=" + dest, "PREFIX=" + prefix)
        assert r.returncode == 0, r.stderr
        unit = open(dest + prefix + "/lib/systemd/system/autopack-supervisor@.service").read()
        assert re.findall(r"^ExecStart=(\S+)", unit, re.M) == [
            prefix + "/bin/autopack-supervisor"], (prefix, unit)


@pytest.mark.parametrize("binary", ["autopack-supervisor", "autopack-worker", "autopack-ctl"])
def test_version_and_short_help(binary):
    v = run(binary, "--version")
    assert v.rc == 0 and v.out == "%s 0.1.0\n" % binary, v
    h = run(binary, "-h")
    assert h.rc == 0 and h.out.startswith("usage: %s" % binary), h
    assert run(binary, "--help").out == h.out


def man_text(page):
    p = subprocess.run(["man", "--warnings", "-l", os.path.join(MAN, page)],
                       env=dict(os.environ, MANWIDTH="200", LC_ALL="C.UTF-8"),
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    # Undo the hyphenation and the adjusting spaces man adds.
    return re.sub(r"\s+", " ", re.sub(r"\u2010\n\s*", "", p.stdout))


@pytest.mark.parametrize("page", ["autopack-supervisor.1", "autopack-ctl.1", "autopack.7"])
def test_man_pages_render_without_warnings(page):
    assert len(man_text(page)) > 1000


def test_supervisor_man_page_names_every_flag():
    page = man_text("autopack-supervisor.1")
    flags = set(re.findall(r"^\s+(--[a-z][a-z-]+)", run("autopack-supervisor", "--help").out,
                           re.M))
    assert len(flags) > 25
    missing = sorted(f for f in flags if f not in page)
    assert missing == [], missing


def test_ctl_man_page_names_every_command():
    page = man_text("autopack-ctl.1")
    names = re.findall(r"^  (\S+(?: \S+)?)\s{2,}", ctl("--help").out, re.M)
    assert len(names) > 20
    missing = [n for n in names if n not in page]
    assert missing == [], missing


def test_unit_passes_systemd_analyze_verify(tmp):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (make deps installs it)")
    text = open(os.path.join(ROOT, "contrib", "autopack-supervisor@.service")).read()
    unit = tmp / "autopack-supervisor@.service"
    unit.write_text(text.replace("@BINDIR@", BIN))
    os.symlink(str(unit), str(tmp / "autopack-supervisor@prod.service"))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        str(tmp / "autopack-supervisor@prod.service")],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    for line in ("Type=notify", "KillMode=mixed", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", "ReadWritePaths=/var/lib/autopack",
                 "WatchdogSec="):
        assert "\n" + line in text, line
    # Longer than a graceful stop can take with the default phase timeout (900 s).
    m = re.search(r"\nTimeoutStopSec=(\d+)min", text)
    assert m and int(m.group(1)) * 60 > 900


def complete(line):
    """What bash completes at the end of `line` with the generated script."""
    script = ctl("completion", "bash").out
    words = line.split(" ")
    prog = ("%s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_autopack_ctl\nprintf '%%s\\n' "
            "\"${COMPREPLY[@]}\"\n" % (script, " ".join("'%s'" % w for w in words),
                                      len(words) - 1))
    p = subprocess.run(["bash", "-c", prog], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return sorted(x for x in p.stdout.split("\n") if x)


def test_completion_completes_commands_and_their_options():
    assert complete("autopack-ctl ret") == ["retry"]
    assert complete("autopack-ctl db ") == ["adopt", "check", "init", "migrate", "reidentify"]
    assert complete("autopack-ctl --db sqlite:///x.db tele") == ["telemetry"]
    assert complete("autopack-ctl retry --fi") == ["--fingerprint"]
    assert complete("autopack-ctl failed --") == ["--db", "--help", "--json", "--run",
                                                  "--since"]
    assert complete("autopack-ctl telemetry export --ou") == ["--out"]
    # --reason takes the failure reasons, typed in either case.
    assert complete("autopack-ctl retry --reason CHECK_") == ["CHECK_FAILED", "CHECK_NOT_RUN"]
    assert complete("autopack-ctl retry --reason provider") == ["PROVIDER_ERROR"]
    assert len(complete("autopack-ctl retry --reason ")) > 15
    assert complete("autopack-ctl retry --run ") == []


def test_completion_offers_only_options_each_command_takes():
    names = re.findall(r"^  (\S+(?: \S+)?)\s{2,}", ctl("--help").out, re.M)
    valued = set(re.findall(r"^\t\t(--[a-z-|]+)\) \(\(i\+\+\)\)", ctl("completion", "bash").out,
                            re.M)[0].split("|"))
    for name in names:
        words = name.split(" ")
        offered = complete("autopack-ctl %s --" % name)
        assert "--help" in offered and "--json" in offered, name
        for opt in offered:
            args = words + [opt] + (["1"] if opt in valued else []) + ["--help"]
            r = ctl(*args)
            # Taken: the help, or a complaint about the value, never about the option.
            assert "unknown option" not in r.err and "does not apply" not in r.err, (
                name, opt, r)
            assert r.rc == 0 or opt in valued, (name, opt, r)


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_readme_begins_with_the_two_commands():
    lines = readme().split("\n")
    assert lines[2] == "```sh"
    assert lines[3].startswith("make demo ") and lines[4].startswith("make check ")
    assert lines[5] == "```"


def test_readme_contents_link_to_every_section():
    text = readme()
    anchors = set()
    for title in re.findall(r"^#{2,3} (.+)$", text, re.M):
        a = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        anchors.add(a)
    toc = text[text.index("## Contents"):text.index("## Quick start")]
    links = re.findall(r"\]\(#([^)]+)\)", toc)
    assert len(links) > 25
    assert [l for l in links if l not in anchors] == []
    for must in ("running-under-systemd", "logs", "backups", "upgrades", "monitoring",
                 "why-did-my-drain-stop", "where-is-a-phases-error", "what-is-left",
                 "seeing-what-failed", "retrying", "failure-reasons", "installing",
                 "exit-statuses"):
        assert must in links, must


def test_readme_reference_names_every_command_flag_and_status():
    text = readme()
    ref = text[text.index("### autopack-ctl commands"):text.index("### Signals")]
    for name in re.findall(r"^  (\S+(?: \S+)?)\s{2,}", ctl("--help").out, re.M):
        assert "| `%s" % name in ref, name
    flags = set(re.findall(r"^\s+(?:-h, )?(--[a-z][a-z-]+)", run("autopack-supervisor",
                                                                   "--help").out, re.M))
    table = ref[ref.index("### autopack-supervisor flags"):ref.index("### Exit statuses")]
    assert [f for f in sorted(flags) if "`%s" % f not in table] == []
    statuses = ref[ref.index("### Exit statuses"):]
    for n in range(6):
        assert "\n| %d |" % n in statuses, n


def test_readme_failure_reasons_name_every_reason():
    """Every failure reason the programs record (the vocabulary's table) has a row saying
    what to do, so an operator can look up whatever `autopack-ctl failed` shows."""
    with open(os.path.join(ROOT, "common", "vocab.c")) as f:
        vocab = f.read()
    table = vocab[vocab.index("reasons[REASON_COUNT]"):]
    reasons = re.findall(r"\[REASON_\w+\] = \"(\w+)\"", table[:table.index("};")])
    assert len(reasons) > 15
    text = readme()
    section = text[text.index("### Failure reasons"):]
    section = section[:section.index("\n## ")]
    rows = re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \|", section, re.M)
    named = [n for r in rows for n in re.findall(r"`(\w+)`", r)]
    assert sorted(named) == sorted(reasons)


def test_readme_links_resolve():
    text = readme()
    for target in re.findall(r"\]\(((?:docs|contrib|tests)/[^)#]*)\)", text):
        assert os.path.exists(os.path.join(ROOT, target)), target
    for page in os.listdir(os.path.join(ROOT, "docs")):
        if not page.endswith(".md"):
            continue
        with open(os.path.join(ROOT, "docs", page)) as f:
            for target in re.findall(r"\]\(([^)#:]+)\)", f.read()):
                assert os.path.exists(os.path.join(ROOT, "docs", target)), (page, target)
