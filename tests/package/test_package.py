#!/usr/bin/env python3
"""The Debian package (issue 16): scripts/package builds
freshcache_VERSION_ARCH.deb from a copy of the source tree; this checks
what it holds, without installing anything:

- control: name, version (meson.build's), architecture, shared-library
  dependencies, /etc/freshcache/freshcache.yaml as a conffile, maintainer
  scripts that create the user (sysusers) and directories (tmpfiles);
- contents: every file `meson install` installs, at its /usr-prefix place
  (man pages and long guides compressed, the unit under /lib/systemd/system
  for bookworm's debhelper), plus copyright and changelog; nothing under
  /usr/local; the programs executable;
- unpacked (dpkg-deb -x into a temporary directory): freshcached --version,
  proxyctl --version, the unit's paths, and `freshcached -t` on the
  packaged config.

Lintian runs inside scripts/package when it is installed (scripts/install-deps
--package); this test says whether it did.  Environment (set by meson):
FRESHCACHE_VERSION, FRESHCACHE_BUILD_ROOT (for meson's install plan)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VERSION = os.environ.get("FRESHCACHE_VERSION")
BUILD_ROOT = os.environ.get("FRESHCACHE_BUILD_ROOT")

# meson's install-plan placeholders at the Debian prefix (debian/rules:
# dh's meson build system passes --prefix=/usr --sysconfdir=/etc)
PLACES = {"{prefix}": "usr", "{bindir}": "usr/bin", "{sbindir}": "usr/sbin",
          "{mandir}": "usr/share/man", "{datadir}": "usr/share", "{sysconfdir}": "etc"}
# debian/rules moves the unit where bookworm's debhelper manages it
MOVED = {"usr/lib/systemd/system/": "lib/systemd/system/"}


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 60),
                          **kw)


class PackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not VERSION or not BUILD_ROOT:
            raise RuntimeError("run through meson test (FRESHCACHE_VERSION, FRESHCACHE_BUILD_ROOT)")
        cls.tmp = tempfile.mkdtemp(prefix="fc-deb-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        env = dict(os.environ, FRESHCACHE_SKIP_DEPS="1")
        t0 = time.monotonic()
        p = run([os.path.join(REPO, "scripts", "package"), "--out", cls.tmp], env=env,
                timeout=900)
        cls.build_seconds = time.monotonic() - t0
        cls.build_output = p.stdout + p.stderr
        if p.returncode != 0:
            raise RuntimeError("scripts/package failed (%d):\n%s" % (p.returncode, cls.build_output))
        sys.stderr.write("package built in %.0f s\n" % cls.build_seconds)
        for line in p.stdout.splitlines():
            if line.startswith("package: lintian"):
                sys.stderr.write(line + "\n")
        cls.arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        cls.deb = os.path.join(cls.tmp, "freshcache_%s_%s.deb" % (VERSION, cls.arch))
        listing = run(["dpkg-deb", "-c", cls.deb]).stdout
        cls.entries = {}            # path without "./" -> (mode, owner)
        for line in listing.splitlines():
            f = line.split()
            path = f[5][2:] if f[5].startswith("./") else f[5]
            cls.entries[path.rstrip("/")] = (f[0], f[1])
        cls.root = os.path.join(cls.tmp, "root")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True, timeout=60)

    def control(self, field):
        p = run(["dpkg-deb", "-f", self.deb, field])
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def control_file(self, name):
        p = run(["dpkg-deb", "-I", self.deb, name])
        self.assertEqual(p.returncode, 0, "%s: %s" % (name, p.stderr))
        return p.stdout

    def test_outputs(self):
        for ext in ("deb", "buildinfo", "changes"):
            path = os.path.join(self.tmp, "freshcache_%s_%s.%s" % (VERSION, self.arch, ext))
            self.assertTrue(os.path.isfile(path), path)
        # dpkg-buildpackage ran in a copy: nothing next to or in the tree
        self.assertFalse([n for n in os.listdir(os.path.dirname(REPO))
                          if n.startswith("freshcache_%s" % VERSION)])
        self.assertFalse(os.path.exists(os.path.join(REPO, "debian", "freshcache")))
        self.assertFalse(os.path.exists(os.path.join(REPO, "debian", ".debhelper")))

    def test_control(self):
        self.assertEqual(self.control("Package"), "freshcache")
        self.assertEqual(self.control("Version"), VERSION)
        self.assertEqual(self.control("Architecture"), self.arch)
        depends = self.control("Depends")
        for lib in ("libevent-core", "libssl3", "libyaml", "libjansson", "libncursesw6",
                    "libsystemd0"):
            self.assertIn(lib, depends)
        self.assertIn("systemd-sysusers", depends)
        self.assertEqual(self.control_file("conffiles").split(), ["/etc/freshcache/freshcache.yaml"])
        postinst = self.control_file("postinst")
        self.assertIn("systemd-sysusers", postinst)
        self.assertIn("freshcache.conf", postinst)
        self.assertIn("systemd-tmpfiles", postinst)
        self.assertIn("freshcached.service", postinst)
        # the user before the directories it owns
        self.assertLess(postinst.index("systemd-sysusers"), postinst.index("systemd-tmpfiles"))
        # installed, not enabled nor started: origin.url must be set first
        self.assertNotIn("deb-systemd-invoke start", postinst)

    def test_contents_match_meson_install(self):
        with open(os.path.join(BUILD_ROOT, "meson-info", "intro-install_plan.json")) as f:
            plan = json.load(f)
        wanted = []
        for section in plan.values():
            for info in section.values():
                dest = info["destination"]
                for k, v in PLACES.items():
                    dest = dest.replace(k, v)
                dest = dest.lstrip("/")
                for old, new in MOVED.items():
                    if dest.startswith(old):
                        dest = new + dest[len(old):]
                wanted.append(dest)
        self.assertGreaterEqual(len(wanted), 10, wanted)
        for dest in wanted:
            self.assertNotIn("{", dest, "unknown install-plan placeholder")
            # dh_compress: man pages, and guides over 4 KiB
            self.assertTrue(dest in self.entries or dest + ".gz" in self.entries,
                            "%s is installed by meson but not in the package" % dest)
        for path in ("usr/share/doc/freshcache/copyright", "usr/share/doc/freshcache/changelog.gz",
                     "usr/share/man/man8/freshcached.8.gz", "usr/share/man/man1/proxyctl.1.gz",
                     "usr/share/man/man5/freshcache.yaml.5.gz"):
            self.assertIn(path, self.entries)
        self.assertFalse([p for p in self.entries if p.startswith("usr/local")])
        for prog in ("usr/sbin/freshcached", "usr/bin/proxyctl"):
            self.assertEqual(self.entries[prog], ("-rwxr-xr-x", "root/root"), prog)
        self.assertEqual(self.entries["etc/freshcache/freshcache.yaml"][0], "-rw-r--r--")

    def test_programs_run(self):
        p = run([os.path.join(self.root, "usr/sbin/freshcached"), "--version"])
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(VERSION, p.stdout + p.stderr)
        p = run([os.path.join(self.root, "usr/bin/proxyctl"), "--version"])
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(VERSION, p.stdout)

    def test_unit_names_installed_paths(self):
        with open(os.path.join(self.root, "lib/systemd/system/freshcached.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/sbin/freshcached -c /etc/freshcache/freshcache.yaml\n", unit)
        self.assertNotIn("@sbindir@", unit)
        with open(os.path.join(self.root, "usr/lib/sysusers.d/freshcache.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^u\s+freshcache\s")

    def test_packaged_config_checks(self):
        freshcached = os.path.join(self.root, "usr/sbin/freshcached")
        config = os.path.join(self.root, "etc/freshcache/freshcache.yaml")
        p = run([freshcached, "-t", "-c", config])
        if p.returncode != 0:
            # Only the directories the unit and tmpfiles.d create on a real
            # installation may be missing on a build machine.
            errors = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
            self.assertTrue(errors, p)
            for line in errors:
                self.assertRegex(line, r"/var/lib/freshcache|/run/freshcache",
                                 "freshcached -t on the packaged config: %s" % line)
            sys.stderr.write("note: freshcached -t: only /var/lib/freshcache or /run/freshcache "
                             "missing on this machine; checking with them in a temporary dir\n")
        # the same file with those two directories somewhere that exists
        with open(config) as f:
            text = f.read()
        state = os.path.join(self.tmp, "state")
        os.mkdir(state)
        text = text.replace("/var/lib/freshcache", state).replace("/run/freshcache", self.tmp)
        copy = os.path.join(self.tmp, "freshcache.yaml")
        with open(copy, "w") as f:
            f.write(text)
        p = run([freshcached, "-t", "-c", copy])
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "OK"), p)

    def test_build_time(self):
        # CI builds it on every run: keep an eye on it
        self.assertLess(self.build_seconds, 240, "the package took %.0f s" % self.build_seconds)


if __name__ == "__main__":
    unittest.main(verbosity=2)
