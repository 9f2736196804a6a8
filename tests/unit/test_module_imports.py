#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every symbol a module imports is there when lockunit loads it: in the program's own dynamic
symbol table (our helpers, and the libstdc++ the program carries: docs/architecture.md,
"libstdc++ inside the program") or in a library the module itself links. A module that needs
a part of libstdc++ the program neither carries nor exports would fail to load (RTLD_NOW) only
when a lock first uses it; this finds it at build time.

usage: test_module_imports.py PROGRAM MODULE.so..."""

import subprocess
import sys


def dynamic_symbols(path, *which):
    out = subprocess.run(["nm", "-D", *which, path], check=True, capture_output=True,
                         text=True).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def libraries(module):
    """The libraries the dynamic loader maps for MODULE, its own dependencies included."""
    out = subprocess.run(["ldd", module], check=True, capture_output=True, text=True).stdout
    return [line.split("=>")[1].split()[0] for line in out.splitlines()
            if "=>" in line and "/" in line.split("=>")[1]]


def main():
    program, modules = sys.argv[1], sys.argv[2:]
    assert modules, "no modules given"
    exported = {fields[-1] for fields in dynamic_symbols(program, "--defined-only")}
    # The program exports libstdc++ but does not link the shared one.
    needed = subprocess.run(["ldd", program], check=True, capture_output=True, text=True).stdout
    assert "libstdc++" not in needed, "%s links the shared libstdc++:\n%s" % (program, needed)
    failures = []
    for module in modules:
        provided = set(exported)
        for library in libraries(module):
            provided |= {f[-1].split("@")[0] for f in dynamic_symbols(library, "--defined-only")}
        imports = {f[1].split("@")[0] for f in dynamic_symbols(module, "--undefined-only")
                   if f[0] == "U"}
        missing = sorted(imports - provided)
        print("%s: %d imports, %d missing" % (module, len(imports), len(missing)))
        if missing:
            failures.append("%s imports what neither lockunit nor its libraries define: %s"
                            % (module, " ".join(missing)))
    if failures:
        sys.exit("\n".join(failures))


if __name__ == "__main__":
    main()
