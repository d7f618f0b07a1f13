"""autopack-ctl as an operator drives it by hand, and a hostile one: --json wherever it
stands on the command line, values at their limits, files that are no regular file, a
database another process holds or that may not be written."""
import json

from conftest import ctl


def commands():
    """Every command autopack-ctl lists in its --help, as lists of words."""
    r = ctl("--help")
    assert r.rc == 0, r
    lines = r.out.split("Commands:\n", 1)[1].splitlines()
    return [line.split("  ")[1].strip().split() for line in lines if line.strip()]


def one_json_error(r):
    """The one JSON object a failed --json command printed on stdout."""
    obj = json.loads(r.out)
    assert isinstance(obj, dict) and obj["ok"] is False, r
    return obj


def test_a_usage_error_ahead_of_json_is_one_json_object_for_every_command(tmp):
    """`autopack-ctl status --bogus --json` printed nothing on stdout: the option parser met
    the unknown option before --json, and a program reading stdout as JSON got nothing to
    parse. --json anywhere on the command line makes every usage error one JSON object."""
    url = "sqlite:///" + str(tmp / "none.db")
    cmds = commands()
    assert ["run", "import"] in cmds and ["status"] in cmds, cmds
    for cmd in cmds:
        for argv in ([*cmd, "--bogus", "--json"], ["--bogus", "--json", *cmd],
                     ["--db", url, "--db", url + "x", *cmd, "--json"],
                     [*cmd, "--db", url, "--db", url + "x", "--json"]):
            r = ctl(*argv)
            assert r.rc == 2, (argv, r)
            obj = one_json_error(r)
            assert obj["error"] == "EINVAL", (argv, r)
            assert "--bogus" in obj["message"] or "--db given twice" in obj["message"], \
                (argv, r)
            assert r.err.startswith("autopack-ctl"), (argv, r)
    for argv in (["nosuch", "--json"], ["db", "nosuch", "--json"], ["--json"],
                 ["run", "import", "a.json", "b.json", "--json"],
                 ["telemetry", "report", "--under-multiplier", "0", "--json"]):
        r = ctl(*argv)
        assert r.rc == 2, (argv, r)
        assert one_json_error(r)["error"] == "EINVAL", (argv, r)
