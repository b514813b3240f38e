#!/usr/bin/env python3
"""Cache keys for scripts/tidy: reads source paths on stdin and prints those clang-tidy must check,
each with its key, as "path key" lines; a path whose key names a file in the cache directory
passed clang-tidy before on exactly the same input and is left out.

A key is the SHA-256 of everything clang-tidy's verdict depends on: its version, .clang-tidy,
the file's compile commands, and the file preprocessed by clang with those commands, macro
definitions kept (-E -dD), so that any change to the file or to any header it includes, or to
a flag, gives a new key. The checkout's own path is taken out, so that checkouts in different
folders share the cache. Anything that cannot be keyed is checked (printed with key "-").

Usage: tidy-keys.py <build dir> <cache dir> < paths
"""
import hashlib
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

build, cache = sys.argv[1], sys.argv[2]
root = os.getcwd()
commands = {}
for e in json.load(open(os.path.join(build, "compile_commands.json"))):
    commands.setdefault(os.path.realpath(e["file"]), []).append(e)
base = hashlib.sha256()
base.update(subprocess.run(["clang-tidy", "--version"], capture_output=True).stdout)
base.update(open(".clang-tidy", "rb").read())


def key(path):
    entries = commands.get(os.path.realpath(path))
    if not entries:
        return "-"
    h = base.copy()
    h.update(open(path, "rb").read())
    for e in sorted(entries, key=lambda e: e["command"]):
        argv = shlex.split(e["command"])
        out, skip = ["clang", "-E", "-dD"], False
        for a in argv[1:]:
            if skip:
                skip = False
            elif a == "-o":
                skip = True
            elif a != "-c":
                out.append(a)
        r = subprocess.run(out, cwd=e["directory"], capture_output=True)
        if r.returncode != 0:
            return "-"
        h.update(e["command"].replace(root, "@").encode())
        h.update(r.stdout.replace(root.encode(), b"@"))
    return h.hexdigest()


paths = [p.strip() for p in sys.stdin if p.strip()]
with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
    for path, k in zip(paths, ex.map(key, paths)):
        if k == "-" or not os.path.exists(os.path.join(cache, k)):
            print(path, k)
