#!/usr/bin/env python3
"""contrib/ (issue 16): the Grafana dashboard and the Prometheus alerts
against a running freshcached.

- Every metric name they use is in the daemon's GET /metrics, except the
  few in PLANNED, which other issues add: those are printed, and listed
  only while they are missing (a name that has landed fails the test until
  it is removed from PLANNED).
- Every label they group or name by is one the metrics carry (or one
  Prometheus adds: instance, job).
- The dashboard is a well-formed Grafana model: unique panel ids, every
  query on the dashboard's Prometheus variable, panels inside the 24-column
  grid, annotations for generation bumps.
- The daemon runs in a cluster (whose Redis is not there), so the cluster
  series are in /metrics too.
- promtool (scripts/install-deps takes it out of Debian's prometheus
  package, without installing the server): `promtool check rules` on
  alerts.yml, `promtool test rules` on alerts_test.yml, and the
  dashboard's queries checked as PromQL the same way.  Without it (a
  machine whose packages are managed otherwise) the test says so and
  skips those.

Needs FRESHCACHED and TEST_ORIGIN (see harness.py)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DASHBOARD = os.path.join(H.REPO, "contrib", "grafana", "freshcache.json")
ALERTS = os.path.join(H.REPO, "contrib", "prometheus", "alerts.yml")
ALERTS_TEST = os.path.join(H.REPO, "contrib", "prometheus", "alerts_test.yml")
PROMTOOL = os.path.join(H.REPO, ".tools", "bin", "promtool")

# Metrics that the dashboards or alerts use before the daemon has them:
# name -> the issue that adds it.  Keep it short; empty it as they land.
PLANNED = {}
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"instance", "job"}

METRIC = re.compile(r"\bfreshcache_[a-z0-9_]+\b")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def dashboard_queries(dash):
    """Every PromQL expression of the dashboard: panel targets, annotations,
    template variables."""
    out = []
    for p in dash["panels"]:
        out += [t["expr"] for t in p.get("targets", [])]
    out += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            out.append(q["query"])
    return out


def alert_exprs(text):
    """The `expr:` of each rule in alerts.yml (a one-line value or a `|`
    block), read without a YAML library."""
    exprs = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        if m.group(2) not in ("|", ">"):
            exprs.append(m.group(2))
            continue
        indent = len(m.group(1))
        block = []
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i].strip())
            i += 1
        exprs.append(" ".join(b for b in block if b))
    return exprs


class ContribTest(H.ProxyTestCase):
    # In a cluster, so that its series are in /metrics too.  Nothing
    # listens on port 1: the node is simply disconnected, which is what
    # FreshcacheClusterDisconnected watches for.
    config = {"cluster": {"redis": "redis://127.0.0.1:1/0", "name": "contrib", "node": "n1"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        status, text = cls.proxy.admin("GET", "/metrics")
        assert status == 200, (status, text)
        cls.exposed = set()           # series and family names
        cls.labels = set()            # label names on any series
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                cls.exposed.add(line.split()[2])
            elif line and not line.startswith("#"):
                m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?", line)
                cls.exposed.add(m.group(1))
                for label in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(2) or ""):
                    cls.labels.add(label)
        cls.dashboard_text = read(DASHBOARD)
        cls.dashboard = json.loads(cls.dashboard_text)
        cls.alerts_text = read(ALERTS)
        cls.queries = dashboard_queries(cls.dashboard) + alert_exprs(cls.alerts_text)

    def used_names(self):
        names = set()
        for text in (self.dashboard_text, self.alerts_text):
            names |= set(METRIC.findall(text))
        return names

    def test_every_metric_exists(self):
        used = self.used_names()
        self.assertGreater(len(used), 10, used)
        missing = sorted(n for n in used if n not in self.exposed and n not in PLANNED)
        self.assertEqual(missing, [], "contrib/ uses metrics that GET /metrics does not have")
        for name, issue in sorted(PLANNED.items()):
            self.assertIn(name, used, "PLANNED lists %s, which contrib/ does not use" % name)
            self.assertNotIn(name, self.exposed,
                             "%s is in /metrics now: remove it from PLANNED in %s"
                             % (name, os.path.basename(__file__)))
            sys.stderr.write("note: %s is allowed to be missing: planned by %s\n" % (name, issue))

    def test_labels_exist(self):
        """Labels grouped by or named in legends: a renamed label would
        silently leave a panel empty."""
        known = self.labels | TARGET_LABELS
        for q in self.queries:
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", q):
                for label in filter(None, (x.strip() for x in group.split(","))):
                    self.assertIn(label, known, "label %r in %s" % (label, q))
        for p in self.dashboard["panels"]:
            for t in p["targets"]:
                for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")):
                    self.assertIn(label, known, "legend label %r in panel %r" % (label, p["title"]))
        # the outcome label of freshcache_responses_total, which the
        # traffic panel stacks by
        self.assertIn("cache", self.labels)

    def test_dashboard_model(self):
        d = self.dashboard
        self.assertEqual(d["uid"], "freshcache")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        titles = set()
        for p in d["panels"]:
            titles.add(p["title"])
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${datasource}"})
            self.assertTrue(p["targets"], p["title"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                # every query follows the instance selector
                self.assertIn('instance=~"$instance"', t["expr"], (p["title"], t["expr"]))
        for want in ("Traffic by cache outcome", "Hit ratio", "Origin latency",
                     "Memory against the bound"):
            self.assertIn(want, titles)
        bumps = [a for a in d["annotations"]["list"] if a["name"] == "Generation bumps"]
        self.assertEqual(len(bumps), 1)
        self.assertIn("freshcache_generation_changed_timestamp_seconds", bumps[0]["expr"])
        self.assertTrue(bumps[0]["enable"])

    def test_alerts_cover_the_issue(self):
        names = re.findall(r"(?m)^\s*- alert:\s*(\S+)", self.alerts_text)
        self.assertEqual(len(names), len(set(names)))
        for want in ("FreshcacheOriginErrors", "FreshcacheHitRatioDrop", "FreshcacheMemoryAtBound",
                     "FreshcacheCertificateExpiresSoon", "FreshcacheClusterDisconnected"):
            self.assertIn(want, names)
        self.assertEqual(len(alert_exprs(self.alerts_text)), len(names))

    # -- promtool ---------------------------------------------------------

    def promtool(self):
        """promtool on PATH, or the one scripts/install-deps takes out of
        Debian's prometheus package (without installing the server)."""
        path = shutil.which("promtool")
        if path is None and os.access(PROMTOOL, os.X_OK):
            path = PROMTOOL
        if path is None:
            self.skipTest("promtool not found (scripts/install-deps puts it in %s): "
                          "rules and PromQL not checked" % PROMTOOL)
        return path

    def run_promtool(self, *args, cwd=None):
        p = subprocess.run([self.promtool()] + list(args), capture_output=True, text=True,
                           timeout=120, cwd=cwd)
        self.assertEqual(p.returncode, 0, "promtool %s:\n%s%s" % (" ".join(args), p.stdout,
                                                                  p.stderr))
        return p.stdout

    def test_promtool_check_rules(self):
        out = self.run_promtool("check", "rules", ALERTS)
        self.assertIn("SUCCESS", out)

    def test_promtool_test_rules(self):
        out = self.run_promtool("test", "rules", os.path.basename(ALERTS_TEST),
                                cwd=os.path.dirname(ALERTS_TEST))
        self.assertIn("SUCCESS", out)

    def test_promtool_dashboard_queries(self):
        """Each dashboard query as a recording rule: promtool parses it."""
        self.promtool()
        rules = []
        for i, q in enumerate(dashboard_queries(self.dashboard)):
            if q.startswith("label_values("):
                continue        # a Grafana function, not PromQL
            q = q.replace("$__rate_interval", "5m").replace("$instance", ".*")
            rules.append("      - record: dashboard_query_%d\n        expr: %s\n"
                         % (i, json.dumps(q)))
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n" + "".join(rules))
        try:
            out = self.run_promtool("check", "rules", f.name)
        finally:
            os.unlink(f.name)
        self.assertIn("SUCCESS: %d rules found" % len(rules), out)


if __name__ == "__main__":
    H.main()
