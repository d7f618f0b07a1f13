"""What the operator reads agrees with what the binaries do: every option of each --help is
in the man page with the same default and argument, and every option a man page or the
README gives a command is one the command takes; every command line in the README, the
docs and the folder READMEs parses (its command and options exist); every metric the docs
name is one a supervisor serves; docs/README.md indexes every page, and each folder's
README.md names every file of its folder; links, anchors and quoted section names resolve."""
import glob
import os
import re
import shlex
import subprocess
import urllib.request

from conftest import ROOT, ctl, run
from supervisor_helpers import Supervisor, new_db

PROGRAMS = ("autopack-ctl", "autopack-supervisor", "autopack-worker")
# Options every autopack-ctl command takes (README, "autopack-ctl commands").
CTL_COMMON = {"--db", "--json", "--help"}


def tracked(*patterns):
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "--"] + list(patterns),
                         capture_output=True, text=True)
    if out.returncode == 0 and out.stdout:
        return out.stdout.split()
    # Not a git checkout (an unpacked tarball): the files as they are.
    found = set()
    for p in patterns:
        found.update(os.path.relpath(f, ROOT) for f in glob.glob(os.path.join(ROOT, p)))
        found.update(os.path.relpath(f, ROOT) for f in glob.glob(os.path.join(ROOT, "**", p),
                                                                 recursive=True))
    return sorted(f for f in found if not f.startswith("build/"))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def man(page):
    """The page as man renders it, wide enough that no entry's first line wraps."""
    p = subprocess.run(["man", "-l", os.path.join(ROOT, "docs", "man", page)],
                       env=dict(os.environ, MANWIDTH="400", LC_ALL="C.UTF-8"),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return re.sub(r"\u2010\n\s*", "", p.stdout)


def help_entries(text):
    """{option: (argument, description)} of the option lines of a --help text."""
    out, cur = {}, None
    for line in text.split("\n"):
        m = re.match(r"^ {1,4}(?:-h, )?(--[a-z][a-z0-9-]*)(?: ([^ ]+))?(.*)$", line)
        if m:
            cur = m.group(1)
            out[cur] = [m.group(2) or "", m.group(3)]
        elif cur and re.match(r"^ {10,}\S", line):
            out[cur][1] += " " + line.strip()
        else:
            cur = None
    return {k: (a, re.sub(r"\s+", " ", d)) for k, (a, d) in out.items()}


def man_entries(text):
    """{option: (argument, description)} of a man page's tagged option paragraphs."""
    out, cur = {}, None
    for line in text.split("\n"):
        m = re.match(r"^ {7}(?:-h, )?(--[a-z][a-z0-9-]*)(?: ([^ ]+))?(.*)$", line)
        if m:
            cur = m.group(1)
            out[cur] = [m.group(2) or "", m.group(3)]
        elif cur and line.startswith(" " * 14):
            out[cur][1] += " " + line.strip()
        elif cur and line.strip() == "":
            continue
        else:
            cur = None
    return {k: (a, re.sub(r"\s+", " ", d)) for k, (a, d) in out.items()}


STOPWORDS = {"a", "an", "the", "in", "only", "no", "every", "each", "of"}


def defaults(desc):
    """The default a description states: its numbers, URLs and fractions, and the one word
    it names (`info (default)`, `(default full)`, `off by default`)."""
    clauses = re.findall(r"\bdefault[: ]+([^;)]*)", desc)
    words = re.findall(r"([a-z][a-z0-9.-]*) \(default\)", desc)
    words += re.findall(r"\b([a-z]+) by default", desc)
    found = set(words)
    for c in clauses:
        found.update(re.findall(r"https?://[^\s,;)]+|\b\d+(?:\.\d+)?\b", c))
        found.update(re.findall(r"\b(quarter|sixteenth|half)\b", c))
        first = c.strip().split(" ")[0].rstrip(",.")
        if re.match(r"^[a-z][a-z0-9.-]*$", first) and first not in STOPWORDS:
            found.add(first)
    return found


def argument(arg):
    """An option's argument as a set of choices (`full|normal`) or its placeholder."""
    return arg.strip("[]") if "|" not in arg else "|".join(sorted(arg.split("|")))


def test_supervisor_help_and_man_page_give_each_option_its_default_and_argument():
    h = help_entries(run("autopack-supervisor", "--help").out)
    m = man_entries(man("autopack-supervisor.1"))
    assert len(h) > 40
    assert sorted(set(h) - set(m)) == [] and sorted(set(m) - set(h)) == []
    wrong = []
    for opt in sorted(h):
        if defaults(h[opt][1]) != defaults(m[opt][1]):
            wrong.append((opt, "default", defaults(h[opt][1]), defaults(m[opt][1])))
        # The help names a choice by a letter (--log-level L) where the page lists it.
        ha, ma = argument(h[opt][0]), argument(m[opt][0])
        if ha != ma and not (len(ha) == 1 and "|" in ma):
            wrong.append((opt, "argument", ha, ma))
    assert wrong == []


def test_worker_help_gives_the_options_the_supervisor_passes_on_their_defaults():
    """The worker takes the supervisor's --check-* and --log-* flags: same defaults."""
    w = help_entries(run("autopack-worker", "--help").out)
    s = help_entries(run("autopack-supervisor", "--help").out)
    shared = sorted(set(w) & set(s))
    assert len(shared) >= 8
    assert [(o, defaults(w[o][1]), defaults(s[o][1])) for o in shared
            if defaults(w[o][1]) != defaults(s[o][1])] == []


def test_readme_gives_each_supervisor_flag_the_default_of_its_help():
    h = help_entries(run("autopack-supervisor", "--help").out)
    text = read("README.md")
    table = text[text.index("### autopack-supervisor flags"):text.index("### Exit statuses")]
    rows = {}
    for flag, default in re.findall(r"^\| `(--[a-z-]+)[^|]*?(?:\\\|[^|]*?)*` \| ([^|]*) \|",
                                    table, re.M):
        rows[flag] = default
    wrong = []
    for opt, (_, desc) in sorted(h.items()):
        if opt in ("--help", "--version"):
            continue
        assert opt in rows, opt
        want = {d for d in defaults(desc) if re.match(r"^[\d.]+$|^https?:", d)}
        got = set(re.findall(r"https?://[^\s,;)`]+|\b\d+(?:\.\d+)?\b", rows[opt]))
        if not want <= got:
            wrong.append((opt, want, rows[opt]))
    assert wrong == []


def ctl_commands():
    return re.findall(r"^  (\S+(?: [a-z-]+)?)\s{2,}", ctl("--help").out, re.M)


def ctl_options(name):
    """The options of one autopack-ctl command: its usage line's and its option lines'."""
    h = ctl(*name.split(" "), "--help").out
    usage = h.split("\n\n")[0]
    opts = set(re.findall(r"(--[a-z][a-z0-9-]*)", usage))
    opts |= set(re.findall(r"^ +(--[a-z][a-z0-9-]*)", h, re.M))
    return opts - CTL_COMMON


def test_ctl_man_page_and_readme_give_each_command_its_options():
    page = man("autopack-ctl.1")
    text = read("README.md")
    ref = text[text.index("### autopack-ctl commands"):text.index("### autopack-supervisor flags")]
    names = ctl_commands()
    assert len(names) > 20
    wrong = []
    for name in names:
        opts = ctl_options(name)
        heads = [line for line in page.split("\n")
                 if re.match(r"^ {7}" + re.escape(name) + r"(\s|$)", line)]
        shown = set(re.findall(r"(--[a-z][a-z0-9-]*)", " ".join(heads))) - CTL_COMMON
        if heads == [] or shown != opts:
            wrong.append(("autopack-ctl.1", name, sorted(opts - shown), sorted(shown - opts)))
        rows = re.findall(r"^\| `" + re.escape(name) + r"(?:\s[^`]*)?`", ref, re.M)
        shown = set(re.findall(r"(--[a-z][a-z0-9-]*)", " ".join(rows))) - CTL_COMMON
        if rows == [] or shown != opts:
            wrong.append(("README.md", name, sorted(opts - shown), sorted(shown - opts)))
    assert wrong == []


def man_entry(page, name):
    """The text of one command's tagged paragraphs in a rendered man page."""
    out, on = [], False
    for line in page.split("\n"):
        if re.match(r"^ {7}" + re.escape(name) + r"(\s|$)", line):
            on = True
        elif not (on and (line.startswith(" " * 14) or line.strip() == "")):
            on = False
        if on:
            out.append(line)
    return re.sub(r"\s+", " ", " ".join(out))


def test_ctl_man_page_gives_each_option_default_of_the_help():
    page = man("autopack-ctl.1")
    wrong = []
    for name in ctl_commands():
        h = ctl(*name.split(" "), "--help").out
        entry = man_entry(page, name)
        found = defaults(h.split("\n\n")[1]) if name == "watch" else set()
        for opt, (_, desc) in help_entries(h).items():
            found |= defaults(desc) | set(re.findall(r"\(default (\.?/?[\w.-]+)", desc))
        missing = sorted(d for d in found if d not in entry)
        if missing:
            wrong.append((name, missing))
    assert wrong == []


def doc_files():
    return ["README.md"] + [f for f in tracked("*.md") if f != "README.md"]


def code_lines(text):
    """The lines of the fenced blocks of a Markdown text, continuations joined."""
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        for line in re.sub(r"\\\n\s*", " ", block).split("\n"):
            yield line


def man_examples(page):
    text = man(page)
    if "\nEXAMPLES\n" not in text:
        return []
    part = text.split("\nEXAMPLES\n", 1)[1].split("\nSEE ALSO\n", 1)[0]
    return re.sub(r"\\\n\s*", " ", part).split("\n")


def commands_in(line):
    """Each invocation of an autopack program in one shell line, as its argv."""
    line = re.sub(r"^\s*\$ ", "", line)
    line = re.sub(r"(^|\s)#.*$", "", line)
    for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
        try:
            words = shlex.split(part.replace("$(", "(").replace("…", "x"))
        except ValueError:
            continue
        at = [i for i, w in enumerate(words) if os.path.basename(w) in PROGRAMS]
        if not at:
            continue
        words = words[at[0]:]
        for i, w in enumerate(words):
            if w.startswith("(") or w.startswith("#"):
                words = words[:i]
                break
        yield [os.path.basename(words[0])] + [w for w in words[1:]
                                               if w not in ("--help", "-h", "--version")]


def test_every_command_line_in_the_docs_parses(tmp):
    """Each command line shown (the README, docs/, the folder READMEs, the man pages'
    examples), run with --help after it: the command and every option exist."""
    lines = []
    for f in doc_files():
        lines += [(f, line) for line in code_lines(read(f))]
    for page in ("autopack-supervisor.1", "autopack-ctl.1"):
        lines += [(page, line) for line in man_examples(page)]
    seen, bad = 0, []
    for where, line in lines:
        for argv in commands_in(line):
            seen += 1
            r = run(argv[0], *argv[1:], "--help", cwd=str(tmp), timeout=30)
            if r.rc != 0 or not r.out.startswith("usage:"):
                bad.append((where, line.strip(), r.err.strip().split("\n")[0]))
    assert seen > 60
    assert bad == []


def test_every_metric_the_docs_name_is_served(tmp):
    sup = Supervisor(tmp, new_db(tmp, runs=1), "--workers", 0, "--http", "127.0.0.1:0")
    try:
        base = sup.wait_ready()["http_url"]
        with urllib.request.urlopen(base.rstrip("/") + "/metrics", timeout=30) as r:
            exposition = r.read().decode()
    finally:
        sup.kill()
    families = set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
    names = set(families)
    for f in families:
        names.update(f + s for s in ("_bucket", "_sum", "_count"))
    # Served only on PostgreSQL (docs/observe.md).
    names.add("autopack_db_reconnecting")
    # Names of other things: PostgreSQL's NOTIFY channels, an SQL function of adoption.
    others = {"autopack_queue", "autopack_control", "autopack_value"}
    wrong = []
    for f in doc_files() + ["docs/man/autopack-supervisor.1", "docs/man/autopack-ctl.1"] + \
            tracked("docs/prometheus/*"):
        for name in sorted(set(re.findall(r"\bautopack_[a-z0-9_]+", read(f)))):
            if name.startswith("autopack_py") or name in others:
                continue
            if name not in names:
                wrong.append((f, name))
    assert wrong == []
    observe = read("docs/observe.md")
    assert [f for f in sorted(families) if "`%s`" % f not in observe] == []


def test_docs_readme_indexes_every_page():
    index = read("docs/README.md")
    pages = [os.path.relpath(f, "docs") for f in tracked("docs/*")]
    top = sorted({p.split("/")[0] + ("/" if "/" in p else "") for p in pages} - {"README.md"})
    assert len(top) > 12
    assert [p for p in top if p not in index] == []


def named(readme, name):
    """Whether a README names a file, by its name or by a pattern in backticks."""
    if re.search(r"(?<![\w.-])" + re.escape(name) + r"(?![\w-])", readme):
        return True
    for pattern in re.findall(r"`([^`\s]*\*[^`\s]*)`", readme):
        if re.fullmatch(re.escape(pattern).replace(r"\*", "[^/]*"), name):
            return True
    return False


def test_each_folder_readme_names_every_file_of_its_folder():
    files = tracked("*")
    folders = sorted({os.path.dirname(f) for f in files if os.path.basename(f) == "README.md"})
    assert len(folders) > 8
    missing = []
    for folder in folders:
        readme = read(os.path.join(folder, "README.md"))
        inside = {os.path.relpath(f, folder or ".") for f in files
                  if f.startswith(folder + "/" if folder else "")}
        entries = {p.split("/")[0] + ("/" if "/" in p else "") for p in inside}
        for entry in sorted(entries - {"README.md"}):
            if entry.startswith(".") or entry.endswith(".README.md"):
                continue
            if not named(readme, entry.rstrip("/")):
                missing.append(os.path.join(folder, entry))
    assert missing == []


def headings(path):
    """The section names of a Markdown page: its headings and its bold paragraph leads."""
    text = re.sub(r"^```.*?^```", "", read(path), flags=re.M | re.S)
    names = re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)
    names += re.findall(r"\*\*([^*\n]+?)\*\*", text)
    return [re.sub(r"[`*]", "", n).strip().rstrip(".") for n in names]


def anchors(path):
    out, seen = set(), {}
    for title in re.findall(r"^#{1,6} (.+?)\s*$",
                            re.sub(r"^```.*?^```", "", read(path), flags=re.M | re.S), re.M):
        a = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        n = seen.get(a)
        seen[a] = 0 if n is None else n + 1
        out.add(a if n is None else "%s-%d" % (a, n + 1))
    return out


def test_links_and_anchors_between_docs_resolve():
    bad = []
    for f in doc_files():
        text = re.sub(r"^```.*?^```", "", read(f), flags=re.M | re.S)
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, frag = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
            if not os.path.exists(os.path.join(ROOT, full)):
                bad.append((f, target))
            elif frag and full.endswith(".md") and frag not in anchors(full):
                bad.append((f, target))
    assert bad == []


def test_quoted_section_names_resolve():
    """A page named with a section's name in quotes after it, in the docs, the code's
    comments and the tests, has a heading or a bold paragraph lead of that name."""
    files = [f for f in tracked("*.md", "*.c", "*.h", "*.py", "*.1", "*.7")
             if not f.startswith("build/")]
    cache, bad, seen = {}, [], 0
    ref = re.compile(r"((?:\.\./)*(?:docs/)?[\w-]+\.md|README)\)?(?:'s)?,? "
                     r"(?:section )?(?:\\\(lq|\\\(dq|\")([^\"\\]{3,80}?)(?:\\\(rq|\\\(dq|\")")
    for f in files:
        text = re.sub(r"\s*\n\s*(?:\*|#|//)?\s*", " ", read(f))
        for doc, title in ref.findall(text):
            if doc in ("README", "README.md"):
                path = "README.md"
            else:
                path = os.path.normpath(os.path.join(os.path.dirname(f), doc))
                for other in (doc, os.path.join("docs", os.path.basename(doc))):
                    if not os.path.exists(os.path.join(ROOT, path)):
                        path = other
            if not os.path.exists(os.path.join(ROOT, path)):
                continue
            if path not in cache:
                cache[path] = headings(path)
            seen += 1
            want = re.sub(r"[`*]", "", title).strip().rstrip(".,")
            if not any(h == want or h.startswith(want) for h in cache[path]):
                bad.append((f, path, title))
    assert seen > 50
    assert bad == []


def test_readme_plan_examples_import(tmp):
    """Each plan the README shows is one `run import` takes, as is tests/data/plan-demo.json."""
    plans = [b for b in re.findall(r"^```json\n(.*?)^```", read("README.md"), re.M | re.S)
             if '"runs"' in b]
    plans.append(read("tests/data/plan-demo.json"))
    assert len(plans) >= 2
    for i, text in enumerate(plans):
        url = "sqlite:///" + str(tmp / ("p%d.db" % i))
        assert ctl("--db", url, "db", "init").rc == 0
        path = tmp / ("plan%d.json" % i)
        path.write_text(text)
        r = ctl("--db", url, "run", "import", str(path))
        assert r.rc == 0 and "all QUEUED" in r.out, (text, r)
