#!/usr/bin/env python3
"""Write the benchmark's origin content into DIR (made if missing).

    gen_content.py DIR

  static/1k.bin, static/16k.bin, static/1m.bin   HIT scenarios
  page.html                                       ~16 KiB HTML page
  objects/small-1k.bin                            every /miss/N, /fill/N URL
  objects/tiny.bin                                every /tiny/N URL (purge)

The bytes are pseudo-random from a fixed seed (the same every run, not
compressible), so nothing depends on the machine.  The MISS scenario does not
need 100 000 files on disk: the origin maps every /miss/N path to the one
small file, and each distinct URL is a distinct cache entry in the proxy.
"""
import os
import random
import sys


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_content.py DIR")
    top = sys.argv[1]
    rnd = random.Random(20240601)
    for name, size in (("1k", 1024), ("16k", 16 * 1024), ("1m", 1024 * 1024)):
        write(os.path.join(top, "static", name + ".bin"), rnd.randbytes(size))
    write(os.path.join(top, "objects", "small-1k.bin"), rnd.randbytes(1024))
    write(os.path.join(top, "objects", "tiny.bin"), b"tiny-object-0001")
    items = "\n".join(
        '    <li><a href="/articles/%d">Article %d</a> — %s</li>' % (i, i, rnd.randbytes(24).hex())
        for i in range(150))
    html = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>freshcache bench page</title>\n"
            "<link rel=\"stylesheet\" href=\"/static/app.3f2a9c1d.css\">\n</head>\n<body>\n"
            "<h1>Benchmark page</h1>\n<ul>\n%s\n</ul>\n</body>\n</html>\n" % items)
    write(os.path.join(top, "page.html"), html.encode())


if __name__ == "__main__":
    main()
