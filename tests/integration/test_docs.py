#!/usr/bin/env python3
"""The docs and the code agree where a machine can tell (issue 20).

- Config keys: every key of conf/freshcache.yaml (commented-out examples
  included) is in freshcache.yaml(5) and the reverse, and both are the
  keys the daemon accepts, read from its own "valid keys" messages
  (`freshcached -t` on probe files).
- Metrics: every metric family a running daemon's /metrics serves is in
  the metric tables of docs/operating.md and docs/admin-api.md, and the
  reverse.
- proxyctl: every command `proxyctl --help` lists is in proxyctl(1)'s
  synopsis and COMMANDS, every command proxyctl(1) describes is one
  proxyctl knows.

Usage (meson passes the files, so a missing one stops configure):
    test_docs.py conf/freshcache.yaml docs/freshcache.yaml.5.scd \\
        docs/operating.md docs/admin-api.md docs/proxyctl.1.scd
Needs FRESHCACHED and PROXYCTL (see harness.py)."""

import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

# The documents, by file name, from the command line; the other arguments
# (a test's name, -v) are unittest's.
DOCS = {os.path.basename(a): a for a in sys.argv[1:] if os.path.isfile(a)}
sys.argv[1:] = [a for a in sys.argv[1:] if not os.path.isfile(a)]
WANTED = ["freshcache.yaml", "freshcache.yaml.5.scd", "operating.md", "admin-api.md",
          "proxyctl.1.scd"]


def read(name):
    with open(DOCS[name], encoding="utf-8") as f:
        return f.read()


def leaves(paths):
    """The paths no other path continues ("a.b" drops "a")."""
    return {p for p in paths if not any(q.startswith(p + ".") for q in paths)}


def diff(a_name, a, b_name, b):
    """A readable difference of two sets, or "" when equal."""
    out = []
    if a - b:
        out.append("in %s, not in %s: %s" % (a_name, b_name, ", ".join(sorted(a - b))))
    if b - a:
        out.append("in %s, not in %s: %s" % (b_name, a_name, ", ".join(sorted(b - a))))
    return "\n".join(out)


# ---------------------------------------------------------------------------
# config keys


def split_flow(text):
    """'a: 1, b: { c: 2 }' -> ['a: 1', 'b: { c: 2 }'] (top-level commas only,
    quotes and brackets respected)."""
    parts, cur, depth, quote = [], "", 0, None
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch in "{[":
            depth += 1
            cur += ch
        elif ch in "}]":
            depth -= 1
            cur += ch
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def flow_keys(value, prefix):
    """Dotted paths of the keys in a flow mapping '{ a: 1, b: { c: 2 } }'."""
    value = value.strip()
    if not (value.startswith("{") and value.endswith("}")):
        return set()
    out = set()
    for part in split_flow(value[1:-1]):
        key, _, rest = part.partition(":")
        path = prefix + "." + key.strip()
        out.add(path)
        out |= flow_keys(rest, path)
    return out


KEY_LINE = re.compile(r"^(?P<indent> *)(?:#(?P<sp> *))?(?P<dash>- +)?(?P<key>[a-z0-9_]+):"
                      r"(?:\s+(?P<value>.*))?$")


def strip_comment(value):
    """A value without its trailing '# comment' (quotes respected)."""
    quote = None
    for i, ch in enumerate(value):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or value[i - 1] in " \t"):
            return value[:i].strip()
    return value.strip()


def conf_keys(text):
    """Dotted key paths of a block-style YAML config, commented-out keys
    ("# ca_file: ...", "#metrics:") included; list items add no index."""
    paths = set()
    stack = []                  # (indent of the key, its path)
    for line in text.splitlines():
        m = KEY_LINE.match(line)
        if not m:
            continue
        indent = len(m.group("indent"))
        if m.group("sp") is not None:
            # "#  listen:" under "#metrics:", "  # - address:" under
            # "listen:": the column after "# " is the key's
            indent += max(0, len(m.group("sp")) - 1)
        if m.group("dash"):
            indent += len(m.group("dash"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value = strip_comment(m.group("value") or "")
        # A commented-out key has a value as the file would: none, one
        # word, or a flow mapping; "# body: identical bytes keep..." is
        # prose that happens to start like a key.
        if m.group("sp") is not None and " " in value and not value.startswith("{"):
            continue
        path = (stack[-1][1] + "." if stack else "") + m.group("key")
        paths.add(path)
        paths |= flow_keys(value, path)
        stack.append((indent, path))
    return leaves(paths)


# A definition: "*key* (type)" or "*a.b*, *a.c* (type)" at the start of a line.
MAN_TERM = re.compile(r"^(\*[a-z0-9_.]+\*(?:, \*[a-z0-9_.]+\*)*) \(")


def man_keys(text):
    """Dotted key paths freshcache.yaml(5) documents: each "## KEY" of TOP-LEVEL
    KEYS, with the "*sub.key* (type)" definitions under it."""
    body = text.split("# TOP-LEVEL KEYS", 1)[1].split("\n# EXAMPLE", 1)[0]
    paths = set()
    for section in re.split(r"^## ", body, flags=re.M)[1:]:
        name, _, rest = section.partition("\n")
        name = name.strip()
        paths.add(name)
        for line in rest.splitlines():
            m = MAN_TERM.match(line)
            if m:
                for key in re.findall(r"\*([a-z0-9_.]+)\*", m.group(1)):
                    paths.add(name + "." + key)
    return leaves(paths)


PROBE = "zz_probe"
UNKNOWN = re.compile(r'unknown key "%s" (?:at the top level|in (\S+)) \(valid keys: ([^)]*)\)'
                     % PROBE)


def schema_keys(tmp):
    """The keys freshcached accepts, from its own messages: a probe key in
    each section makes -t list the valid ones, recursively."""
    counter = [0]

    def errors(doc):
        counter[0] += 1
        path = os.path.join(tmp, "probe-%d.yaml" % counter[0])
        with open(path, "w") as f:
            f.write(H.to_yaml(doc) + "\n")
        p = subprocess.run([H.FRESHCACHED, "-t", "-c", path], capture_output=True, text=True,
                           timeout=10, stdin=subprocess.DEVNULL)
        return p.stderr

    def nest(keys, value):
        """{k1: {k2: value}}, a key "k[]" standing for a list of one item."""
        for key in reversed(keys):
            if key.endswith("[]"):
                value = {key[:-2]: [value]}
            else:
                value = {key: value}
        return value

    def valid_keys(keys):
        """The keys valid in the section at `keys`, or None (not a section)."""
        m = UNKNOWN.search(errors(nest(keys, {PROBE: 1}) if keys else {PROBE: 1}))
        return [k.strip() for k in m.group(2).split(",")] if m else None

    found = set()

    def walk(keys, dotted):
        for key in valid_keys(keys):
            path = dotted + ("." if dotted else "") + key
            found.add(path)
            for form in (key, key + "[]"):      # a mapping, or a list of them
                if valid_keys(keys + [form]) is not None:
                    walk(keys + [form], path)
                    break

    walk([], "")
    return leaves(found)


class ConfigKeysTest(unittest.TestCase):

    def test_conf_and_man_page_and_daemon_agree(self):
        conf = conf_keys(read("freshcache.yaml"))
        man = man_keys(read("freshcache.yaml.5.scd"))
        self.assertGreater(len(conf), 30, conf)
        self.assertFalse(diff("conf/freshcache.yaml", conf, "freshcache.yaml(5)", man),
                         diff("conf/freshcache.yaml", conf, "freshcache.yaml(5)", man))
        with tempfile.TemporaryDirectory(prefix="fc-docs-") as tmp:
            code = schema_keys(tmp)
        self.assertIn("policies.match.path", code)
        self.assertFalse(diff("freshcache.yaml(5)", man, "freshcached's schema", code),
                         diff("freshcache.yaml(5)", man, "freshcached's schema", code))

    def test_parsers(self):
        # the readers above, on the shapes the documents use
        self.assertEqual(conf_keys(
            "listen:\n  - address: x\n  # - address: y\n  #   tls: { certificate: c, key: k }\n"
            "origin:\n  tls:\n    verify: true\n    # ca_file: /x\n"
            "#metrics:\n#  listen: 127.0.0.1:9\n"
            "policies:\n  - name: a\n    match: { path: '(a|b), c$' }  # a comment: x\n"
            "# Prose: not a key\n#   match     path: not a key either\n"
            "  # body: prose that starts like a key\n"),
            {"listen.address", "listen.tls.certificate", "listen.tls.key", "origin.tls.verify",
             "origin.tls.ca_file", "metrics.listen", "policies.name", "policies.match.path"})
        self.assertEqual(man_keys(
            "# VALUES\n\n*size* (x)\n\tx\n\n# TOP-LEVEL KEYS\n\n## listen\n\n*address* (_s_)\n"
            "\tx *y* z\n\n*tls.certificate*, *tls.key* (_path_)\n\n## workers\n\n*auto* or a "
            "number\n*live*. Not a key\n*proxyctl*(1) neither\n\n# EXAMPLE\n\n## nope\n"),
            {"listen.address", "listen.tls.certificate", "listen.tls.key", "workers"})


# ---------------------------------------------------------------------------
# metrics


def table_metrics(text, section):
    """The metric names in the first column of the table under `section`."""
    start = text.index(section)
    rest = text[start:]
    end = re.search(r"^#{2,3} ", rest[len(section):], re.M)
    rest = rest[:len(section) + end.start()] if end else rest
    names = set()
    for line in rest.splitlines():
        if line.startswith("| `freshcache_"):
            first = line.split("|")[1]
            names |= set(re.findall(r"`(freshcache_[a-z_]+)", first))
    return names


class MetricsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if H.DIRECT:
            raise unittest.SkipTest("needs freshcached")
        cls.tmp = tempfile.mkdtemp(prefix="fc-docs-")
        H._tmpdirs.append(cls.tmp)
        for attempt in range(2):
            cfg = H.default_config(H.free_port(), "http://127.0.0.1:9", cls.tmp)
            # In a cluster (whose Redis is not there: it does not have to
            # be) /metrics adds the cluster's families, documented too.
            cfg["cluster"] = {"redis": "redis://127.0.0.1:%d/0" % H.free_port(), "node": "docs"}
            try:
                cls.proxy = H.Proxy(cfg, cls.tmp)
                break
            except RuntimeError:
                if attempt == 1:
                    raise
        cls.addClassCleanup(cls.proxy.stop)

    def served(self):
        status, body = self.proxy.admin("GET", "/metrics")
        self.assertEqual(status, 200, body)
        return set(re.findall(r"^# TYPE (\S+) ", body, re.M))

    def test_every_metric_documented_and_the_reverse(self):
        served = self.served()
        self.assertIn("freshcache_origin_latency_seconds", served)
        self.assertIn("freshcache_responses_total", served)
        for doc, section in (("operating.md", "## Metrics"),
                             ("admin-api.md", "### GET /metrics")):
            with self.subTest(doc=doc):
                documented = table_metrics(read(doc), section)
                self.assertFalse(diff("/metrics", served, doc, documented),
                                 diff("/metrics", served, doc, documented))


# ---------------------------------------------------------------------------
# proxyctl commands


def help_commands():
    p = subprocess.run([H.PROXYCTL, "--help"], capture_output=True, text=True, timeout=10)
    section = p.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^  ([a-z]+)\b", section, re.M))


def man_commands(text):
    """(synopsis commands, COMMANDS terms) of proxyctl(1)."""
    synopsis = text.split("# SYNOPSIS", 1)[1].split("\n# ", 1)[0]
    commands = text.split("# COMMANDS", 1)[1].split("\n# ", 1)[0]
    return (set(re.findall(r"^\*proxyctl\* \*([a-z]+)\*", synopsis, re.M)),
            set(re.findall(r"^\*([a-z]+)\*", commands, re.M)))


class ProxyctlCommandsTest(unittest.TestCase):

    def test_every_command_in_the_man_page(self):
        known = help_commands()
        self.assertIn("verify", known)
        synopsis, described = man_commands(read("proxyctl.1.scd"))
        # options such as *--soft* are described there too: commands only
        described = {c for c in described if not c.startswith("-")}
        self.assertFalse(known - synopsis, "not in proxyctl(1)'s SYNOPSIS: %s"
                         % sorted(known - synopsis))
        self.assertFalse(known - described, "not in proxyctl(1)'s COMMANDS: %s"
                         % sorted(known - described))
        # and what the man page describes, proxyctl knows
        for cmd in sorted(synopsis | described):
            with self.subTest(cmd=cmd):
                p = subprocess.run([H.PROXYCTL, "-s", "/nonexistent/admin.sock", cmd],
                                   capture_output=True, text=True, timeout=10)
                self.assertNotIn("unknown command", p.stderr)


def setUpModule():
    missing = [n for n in WANTED if n not in DOCS]
    if missing:
        raise RuntimeError("give the documents on the command line; missing: %s" % missing)
    if not H.FRESHCACHED or not H.PROXYCTL:
        raise RuntimeError("FRESHCACHED and PROXYCTL must be set (see harness.py)")


if __name__ == "__main__":
    H.main()
