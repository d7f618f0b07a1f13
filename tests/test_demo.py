"""`make demo`, the README's first command: tests/demo.sh with AUTOPACK_BIN set, run in a
fresh directory as on a fresh clone, with no API key in the environment."""
import json
import os
import subprocess

from conftest import BIN, ROOT

DEMO_SH = os.path.join(ROOT, "tests", "demo.sh")


def run_demo(cwd, bin_dir=BIN):
    env = dict(os.environ)
    env["AUTOPACK_BIN"] = bin_dir
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AUTOPACK_DB_URL", "DATABASE_URL"):
        env.pop(var, None)
    return subprocess.run(["sh", DEMO_SH], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=300)


def test_make_demo_drains_the_seed_run_in_a_fresh_directory_and_exits_0(tmp):
    r = run_demo(tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for step in ("==> autopack-ctl db init", "==> autopack-ctl seed telemetry-run",
                 "==> starting the LLM stand-in", "==> autopack-supervisor --workers 4",
                 "==> autopack-ctl db check", "==> summary"):
        assert step in out, step
    assert "phases by state:  COMPLETE 10" in out
    assert "events committed: 50 (llm_request 10, llm_usage 10, log 20, token_estimation_v2 10)" in out
    assert "files written:    demo/workspace/examples/telemetry_utils/ (11)" in out
    assert "The drain completed every phase." in out
    assert "ended (drained): 10 attempt(s), 50 event(s) committed, 0 rejected" in r.stderr
    demo = os.path.join(str(tmp), "demo")
    assert os.path.isfile(os.path.join(demo, "workspace", "examples", "telemetry_utils",
                                       "string_helper.py"))
    with open(os.path.join(demo, "llm-requests.log")) as f:
        sent = [json.loads(line) for line in f]
    assert len(sent) == 10 and all(q["key_ok"] for q in sent)
    # The stand-in was stopped on the way out.
    port = int(open(os.path.join(demo, "llm.port")).read())
    probe = subprocess.run(["/usr/bin/python3", "-c",
                            "import socket; socket.create_connection(('127.0.0.1', %d), 2)"
                            % port], capture_output=True)
    assert probe.returncode != 0


def test_make_demo_wipes_a_previous_demo_directory(tmp):
    os.makedirs(os.path.join(str(tmp), "demo", "workspace"))
    with open(os.path.join(str(tmp), "demo", "autopack.db"), "w") as f:
        f.write("not a database\n")
    with open(os.path.join(str(tmp), "demo", "stale.txt"), "w") as f:
        f.write("left over\n")
    r = run_demo(tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not os.path.exists(os.path.join(str(tmp), "demo", "stale.txt"))
    assert "phases by state:  COMPLETE 10" in r.stdout


def test_make_demo_without_built_binaries_says_to_run_make(tmp):
    r = run_demo(tmp, bin_dir=os.path.join(str(tmp), "no-such-build"))
    assert r.returncode == 1
    assert "autopack-ctl not found; run make first" in r.stderr
    assert not os.path.exists(os.path.join(str(tmp), "demo"))


def test_make_demo_installs_every_package_the_stand_in_imports():
    # On a bare machine `make demo` stopped at "python3 not found": it installed only the
    # build's packages. Each module the stand-in imports from outside the standard library
    # and the tests folder must come from a Debian package make demo installs (dpkg -S).
    import ast
    import importlib.util
    import re
    import sys
    with open(os.path.join(ROOT, "Makefile")) as f:
        demo_debs = re.search(r"^DEMO_DEBS\s*:=\s*(.*)$", f.read(), re.M).group(1).split()
    assert "python3" in demo_debs
    local = {n[:-3] for n in os.listdir(os.path.join(ROOT, "tests")) if n.endswith(".py")}
    seen, todo, outside = set(), ["llm_standin"], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        with open(os.path.join(ROOT, "tests", name + ".py")) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for m in (m.split(".")[0] for m in mods):
                if m in local:
                    if m not in seen:
                        todo.append(m)
                elif m not in sys.stdlib_module_names:
                    outside.add(m)
    assert outside, "the stand-in imports nothing from outside: the check checks nothing"
    for m in sorted(outside):
        spec = importlib.util.find_spec(m)
        assert spec is not None and spec.origin, m
        r = subprocess.run(["dpkg", "-S", spec.origin], capture_output=True, text=True)
        assert r.returncode == 0, (m, spec.origin, r.stderr)
        pkg = r.stdout.split(":")[0]
        assert pkg in demo_debs, (m, pkg, demo_debs)
