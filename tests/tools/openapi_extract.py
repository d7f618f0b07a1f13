#!/usr/bin/python3
"""Copy, verbatim, the schemas of an OpenAPI document that the given root schemas need
(every component schema reachable through $ref), into a smaller OpenAPI document.

usage: openapi_extract.py OPENAPI.yaml OUT.yaml ROOT_SCHEMA...

Each schema's text is copied line for line from the source, in the source's order, under
the source's `openapi` and `info` header; nothing is re-serialised. The output is checked
to parse and to define every schema it refers to.
"""
import re
import sys

import yaml

SCHEMA_KEY = re.compile(r"^    ([A-Za-z0-9_.-]+):\s*$")


def schema_blocks(lines):
    """The `openapi` and `info` lines, {name: [lines]} of components.schemas, their order."""
    blocks, order = {}, []
    header = []
    for line in lines:
        if line.strip() and not line.startswith((" ", "openapi:", "info:")):
            break
        header.append(line)
    start = lines.index("components:\n") + 1
    assert lines[start] == "  schemas:\n"
    name = None
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith("    "):
            break
        m = SCHEMA_KEY.match(line)
        if m:
            name = m.group(1)
            blocks[name] = []
            order.append(name)
        if name is not None:
            blocks[name].append(line)
    return header, blocks, order


def refs(text):
    return set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text))


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    with open(argv[1]) as f:
        lines = f.readlines()
    header, blocks, order = schema_blocks(lines)
    need, todo = set(), list(argv[3:])
    while todo:
        name = todo.pop()
        if name in need:
            continue
        if name not in blocks:
            sys.stderr.write("openapi_extract: no schema %s\n" % name)
            return 1
        need.add(name)
        todo.extend(refs("".join(blocks[name])) - need)
    with open(argv[2], "w") as out:
        out.write("".join(header))
        out.write("components:\n  schemas:\n")
        for name in order:
            if name in need:
                out.write("".join(blocks[name]))
    with open(argv[2]) as f:
        doc = yaml.safe_load(f)
    missing = refs(open(argv[2]).read()) - set(doc["components"]["schemas"])
    if missing:
        sys.stderr.write("openapi_extract: unresolved %s\n" % ", ".join(sorted(missing)))
        return 1
    print("%s: %d schemas" % (argv[2], len(need)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
