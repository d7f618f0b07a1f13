"""What the operator reads agrees with the sources: every option of the binaries' option
tables (supervisor/main.c, ctl/*.c, worker/main.c) is in the --help and the man page; every
outcome, failure reason and other vocabulary word of common/vocab.c is in the docs; every
exit status a man page gives is in the README's table; every field the docs name in the
status document, /healthz and `session show --json` is one they hold; every source path
the docs name exists."""
import fnmatch
import glob
import json
import os
import re
import urllib.request

from conftest import ROOT, ctl, run
from supervisor_helpers import Supervisor, new_db
from test_docs import doc_files, man, read, tracked


def table_options(path):
    """The long options of each `struct option` table of a C file."""
    out = set()
    for body in re.findall(r"struct option \w+\[\] = \{(.*?)\};", read(path), re.S):
        out.update("--" + o for o in re.findall(r'\{\s*"([a-z][a-z0-9-]*)"', body))
    return out


def ctl_helps():
    """The --help of autopack-ctl and of each of its commands, joined."""
    top = ctl("--help").out
    names = re.findall(r"^  (\S+(?: [a-z-]+)?)\s{2,}", top, re.M)
    assert len(names) > 20
    return top + "".join(ctl(*n.split(" "), "--help").out for n in names)


def test_every_option_of_the_option_tables_is_in_the_help_and_the_man_page():
    sup = table_options("supervisor/main.c")
    assert len(sup) > 40
    sup_help = run("autopack-supervisor", "--help").out
    sup_man = man("autopack-supervisor.1")
    ctl_opts = set()
    for f in glob.glob(os.path.join(ROOT, "ctl", "*.c")):
        ctl_opts |= table_options(os.path.relpath(f, ROOT))
    assert len(ctl_opts) > 25
    ctl_help = ctl_helps()
    ctl_man = man("autopack-ctl.1")
    # The worker compares its arguments one by one (worker/main.c, check_limits.c).
    worker = set(re.findall(r'strcmp\(argv\[i\], "(--[a-z][a-z0-9-]*)"\)',
                            read("worker/main.c")))
    worker |= set(re.findall(r'"(--check-[a-z-]+)"', read("worker/check_limits.c")))
    assert len(worker) > 10
    worker_help = run("autopack-worker", "--help").out
    missing = []
    for opts, text, where in ((sup, sup_help, "autopack-supervisor --help"),
                              (sup, sup_man, "autopack-supervisor.1"),
                              (ctl_opts, ctl_help, "autopack-ctl --help"),
                              (ctl_opts, ctl_man, "autopack-ctl.1"),
                              (worker, worker_help, "autopack-worker --help")):
        for o in sorted(opts):
            if not re.search(re.escape(o) + r"(?![a-z0-9-])", text):
                missing.append((where, o))
    assert missing == []


def vocabulary():
    """{table name: its words} of common/vocab.c."""
    text = read("common/vocab.c")
    out = {}
    for name, body in re.findall(r"static const (?:char \*const|struct \w+) (\w+)\[\w+\] = "
                                 r"\{(.*?)\n\};", text, re.S):
        out[name] = re.findall(r'\] = \{? ?"([A-Za-z_0-9]+)"', body)
    return out


def test_every_word_of_the_vocabulary_is_in_the_docs():
    vocab = vocabulary()
    assert {"outcomes", "reasons"} <= set(vocab), sorted(vocab)
    assert len(vocab["reasons"]) > 20 and len(vocab["outcomes"]) > 10
    docs = read("docs/data-model.md") + read("docs/drain-rules.md")
    # The stop levels name `stop` and `stop --now` (the README's reference).
    del vocab["stop_levels"]
    missing = [(t, w) for t, words in sorted(vocab.items()) for w in words
               if not re.search(r"(?<![\w])%s(?![\w])" % re.escape(w), docs)]
    assert missing == []
    # Each failure reason has its row in the README's table, and autopack(7) lists the
    # outcomes.
    readme = read("README.md")
    table = readme[readme.index("### Failure reasons"):readme.index("## Running in production")]
    page = man("autopack.7")
    page = page[page.index("ATTEMPTS AND FAILURES"):page.index("DRAINS AND SESSIONS")]
    page = re.sub(r"\u2010\s*\n\s*", "", page)
    assert [r for r in vocab["reasons"] if "`%s`" % r not in table] == []
    assert [o for o in vocab["outcomes"] if o not in page] == []


def exit_statuses(text):
    """The statuses of a man page's EXIT STATUS section."""
    part = text.split("\nEXIT STATUS\n", 1)[1].split("\nEXAMPLES\n", 1)[0]
    found = set()
    for tag in re.findall(r"^ {7}(\d[\d, ]*?)\s{2,}", part, re.M):
        found.update(tag.replace(" ", "").split(","))
    return found


def readme_statuses(title):
    """The statuses of the README's exit status table under `title`."""
    text = read("README.md")
    part = text[text.index("### Exit statuses"):text.index("### Signals")]
    part = part[part.index(title):]
    table = re.search(r"\| status \| when \|\n\|---\|---\|\n((?:\|.*\n)+)", part).group(1)
    found = set()
    for tag in re.findall(r"^\| ([\d, ]+) \|", table, re.M):
        found.update(tag.replace(" ", "").split(","))
    return found


def test_the_exit_statuses_of_the_man_pages_are_the_readmes():
    for page, title in (("autopack-supervisor.1", "`autopack-supervisor`:"),
                        ("autopack-ctl.1", "`autopack-ctl` (every command):")):
        got = exit_statuses(man(page))
        assert len(got) >= 4
        assert got == readme_statuses(title), page


def keys(doc, prefix=""):
    """Every key of a JSON document, dotted (`database.file_checks`); list items as the
    list's name (`pool.workers.phase_age_seconds`)."""
    out = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.add(prefix + k)
            out |= keys(v, prefix + k + ".")
    elif isinstance(doc, list):
        for v in doc:
            out |= keys(v, prefix)
    return out


def documented_status_fields():
    """The fields docs/observe.md names in its paragraph on the status document, and the
    dotted ones docs/supervisor.md gives `status --json`."""
    text = read("docs/observe.md")
    start = text.index("The status document also carries")
    para = text[start:text.index("\n\n", start)]
    para = re.sub(r"`<workspace>[^`]*`|`not started[^`]*`", "", para)
    names = set(re.findall(r"`([a-z_][a-z0-9_.]*)`", para))
    sup = read("docs/supervisor.md")
    for m in re.finditer(r"status --json", sup):
        near = sup[m.start():m.start() + 400]
        names |= {n for n in re.findall(r"`([a-z_]+\.[a-z_.]+)`", near)}
    names |= set(re.findall(r"`(eta_basis|attempt_median_seconds|progress)`", text))
    return names - {"null"}


def test_the_fields_the_docs_name_are_in_the_status_document_and_healthz(tmp):
    sup = Supervisor(tmp, new_db(tmp, runs=1), "--workers", 1, "--http", "127.0.0.1:0",
                     "--dry-run")
    try:
        base = sup.wait_ready()["http_url"].rstrip("/")
        r = ctl("--db", sup.url, "status", "--json")
        assert r.rc == 0, r
        status = json.loads(r.out)
        with urllib.request.urlopen(base + "/healthz", timeout=30) as h:
            health = json.loads(h.read().decode())
    finally:
        sup.kill()
    have = keys(status)
    # A worker's fields are the workers' in pool.workers; the documented leaf names suffice.
    leaves = {k.split(".")[-1] for k in have}
    names = documented_status_fields()
    assert len(names) > 15
    # A failure's log_path is there with the failures the dry run has none of.
    assert status["failures_recent"] == [] and "log_path" in names
    names.discard("log_path")
    missing = sorted(n for n in names if n not in have and n.split(".")[-1] not in leaves)
    assert missing == []
    # The /healthz example shows every field the answer has, and no other.
    obs = read("docs/observe.md")
    example = obs[obs.index("### /healthz"):]
    example = example[example.index("```json\n") + 8:]
    example = example[:example.index("\n```")]
    shown = set(re.findall(r'"([a-z_]+)":', example)) - set(health["workers"])
    # server_id is named in the prose under the example (PostgreSQL's, null on SQLite).
    assert set(health) - shown == {"server_id"} and shown - set(health) == set()


def test_the_session_show_json_fields_the_docs_name_exist(tmp):
    url = new_db(tmp, runs=1)
    sup = Supervisor(tmp, url, "--workers", 1, "--dry-run", "--exit-when-drained")
    assert sup.wait(timeout=120) == 0, sup.stderr()
    r = ctl("--db", url, "session", "show", "--json")
    assert r.rc == 0, r
    doc = json.loads(r.out)
    text = read("docs/drain-rules.md")
    start = text.index("With `--json`: `session`")
    para = text[start:text.index("\n\n", start)]
    named = re.findall(r"`([a-z_]+)`", para.split("(each", 1)[0])
    named += ["database"]
    assert len(named) >= 6 and "settings" in named
    named.remove("settings")
    assert [n for n in named if n not in doc] == []
    assert "settings" in doc["session"]


# Example paths the docs give as a phase's files, not as files of the tree.
EXAMPLE_PATHS = {"docs/a.md", "docs/auth.md"}


def test_every_source_path_the_docs_name_exists():
    files = set(tracked("*"))
    dirs = set()
    for f in files:
        d = os.path.dirname(f)
        while d:
            dirs.add(d)
            d = os.path.dirname(d)
    pages = doc_files() + ["docs/man/autopack-supervisor.1", "docs/man/autopack-ctl.1",
                           "docs/man/autopack.7"]
    pattern = re.compile(r"(?<![\w/.-])((?:common|ctl|supervisor|worker|tests|docs|proto|"
                         r"contrib)/[\w./@*-]*[\w*]/?)")
    seen, bad = 0, []
    for page in pages:
        text = read(page).replace("\\-", "-").replace("\\&", "")
        for path in pattern.findall(text):
            path = path.rstrip("/")
            seen += 1
            if path in files or path in dirs or path in EXAMPLE_PATHS:
                continue
            if "*" in path and fnmatch.filter(files, path):
                continue
            # tests/x.py::test_name, tests/x.make_plan: a file and a name in it.
            base = re.sub(r"\.(\w+)$", r".py", path) if not path.endswith(".py") else path
            if base in files and re.search(r"\.py\.\w+$|\.\w+$", path):
                continue
            # A task category given as a directory (docs/low, tests/medium).
            if re.fullmatch(r"(docs|tests)/(low|medium|high)", path):
                continue
            bad.append((page, path))
    # The man pages name the pages of docs/ by their file names alone.
    for page in pages[-3:]:
        text = read(page).replace("\\-", "-").replace("\\&", "")
        for name in re.findall(r"(?<![\w/.-])([\w-]+\.md)\b", text):
            seen += 1
            if "docs/" + name not in files and name not in files:
                bad.append((page, name))
    assert seen > 100
    assert bad == []


def test_every_command_usage_names_json_as_the_readme_says_every_command_takes_it():
    top = ctl("--help").out
    names = re.findall(r"^  (\S+(?: [a-z-]+)?)\s{2,}", top, re.M)
    usage = {n: ctl(*n.split(" "), "--help").out.split("\n\n")[0] for n in names}
    assert len(usage) > 20
    # completion prints a script; --json would have nothing to put in a result.
    assert [n for n, u in usage.items() if "--json" not in u and n != "completion"] == []
