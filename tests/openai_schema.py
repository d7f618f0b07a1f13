"""OpenAI's own chat-completions schemas (tests/data/openai-chat-completions.yaml, copied
verbatim from OpenAI's OpenAPI document): validate a request body as the API would, and
generate random responses that the schema accepts."""
import os
import random

import jsonschema
import yaml

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                    "openai-chat-completions.yaml")
REQUEST = "CreateChatCompletionRequest"
RESPONSE = "CreateChatCompletionResponse"

_doc = None


def document():
    global _doc
    if _doc is None:
        with open(PATH) as f:
            _doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return _doc


def schema(name):
    return document()["components"]["schemas"][name]


def validator(name):
    """A JSON Schema (2020-12, the dialect of OpenAPI 3.1) validator for one component."""
    resolver = jsonschema.RefResolver.from_schema(document())
    return jsonschema.Draft202012Validator({"$ref": "#/components/schemas/" + name},
                                           resolver=resolver)


def _properties(s, seen):
    """Every property name a schema (with its allOf branches and refs) defines."""
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return set()
        return _properties(schema(name), seen | {name})
    names = set(s.get("properties", {}))
    for sub in s.get("allOf", []):
        names |= _properties(sub, seen)
    return names


_request_validator = None


def request_errors(body):
    """What the API would refuse in a chat-completions request body: schema violations
    (with their JSON path) and arguments the schema does not define."""
    global _request_validator
    if _request_validator is None:
        _request_validator = validator(REQUEST)
    if not isinstance(body, dict):
        return ["the request body is not a JSON object"]
    known = _properties(schema(REQUEST), frozenset())
    errors = ["Unrecognized request argument supplied: %s" % k for k in body if k not in known]
    for e in sorted(_request_validator.iter_errors(body), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in e.path) or "(body)"
        errors.append("%s: %s" % (where, e.message))
    return errors


class Generator:
    """Random instances of a schema: required properties always, optional ones by chance,
    one branch of each anyOf/oneOf, enum values, small arrays and strings."""

    def __init__(self, seed):
        self.rng = random.Random(seed)

    def value(self, s, depth=0):
        rng = self.rng
        if "$ref" in s:
            return self.value(schema(s["$ref"].rsplit("/", 1)[1]), depth + 1)
        if "allOf" in s:
            out = {}
            for sub in s["allOf"]:
                v = self.value(sub, depth + 1)
                if isinstance(v, dict):
                    out.update(v)
            return out
        for key in ("anyOf", "oneOf"):
            if key in s:
                branches = s[key]
                if depth > 6:
                    nulls = [b for b in branches if b.get("type") == "null"]
                    branches = nulls or branches
                return self.value(rng.choice(branches), depth + 1)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return rng.choice(s["enum"])
        t = s.get("type")
        if isinstance(t, list):
            t = rng.choice(t)
        if t is None:
            t = "object" if "properties" in s else "string"
        if t == "null":
            return None
        if t == "boolean":
            return rng.random() < 0.5
        if t == "integer":
            lo = s.get("minimum", 0)
            hi = s.get("maximum", rng.choice([100, 100000, 1 << 33]))
            return rng.randint(int(lo), int(hi))
        if t == "number":
            lo = s.get("minimum", -100.0)
            hi = s.get("maximum", 100.0)
            return rng.uniform(lo, hi)
        if t == "string":
            return self.text()
        if t == "array":
            lo = s.get("minItems", 0)
            hi = max(lo, min(s.get("maxItems", 3), 3 if depth < 5 else lo))
            return [self.value(s.get("items", {}), depth + 1)
                    for _ in range(rng.randint(lo, hi))]
        out = {}
        required = set(s.get("required", []))
        for name, sub in s.get("properties", {}).items():
            if name in required or (depth < 6 and rng.random() < 0.5):
                out[name] = self.value(sub, depth + 1)
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) and depth < 6:
            for i in range(rng.randint(0, 2)):
                out["k%d" % i] = self.value(extra, depth + 1)
        return out

    def text(self):
        rng = self.rng
        alphabet = "abc xyz 012 {}[]\",:\\\n\té€😀"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))


def random_response(seed, tries=50):
    """A random chat-completion response the schema accepts."""
    check = validator(RESPONSE)
    gen = Generator(seed)
    for _ in range(tries):
        doc = gen.value(schema(RESPONSE))
        if check.is_valid(doc):
            return doc
    raise AssertionError("no schema-valid response generated for seed %r" % seed)
