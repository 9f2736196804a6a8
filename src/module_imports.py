#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the program must carry and export for its modules (docs/architecture.md, "libstdc++
inside the program"). The program links libstdc++ statically and exports only what a module
imports: this reads every module's undefined symbols and writes

- LIST, a dynamic list (ld --dynamic-list): those symbols, plus every module entry
  (lockunit_module_*, util/module.hpp), which the program looks up in itself;
- SCRIPT, a linker script of one EXTERN(...) (ld -u): those of them that libstdc++.a defines,
  so that the program links them in although its own code may never call them.

usage: module_imports.py NM LIBSTDCXX_A LIST SCRIPT MODULE.so..."""

import subprocess
import sys


def symbols(nm, args, kinds=None):
    """The names (without @VERSION) that `nm ARGS` lists, of the symbol kinds KINDS if given;
    an archive's member headers ("name.o:") are skipped."""
    out = subprocess.run([nm, *args], check=True, capture_output=True, text=True).stdout
    return {fields[-1].split("@")[0] for fields in map(str.split, out.splitlines())
            if fields and not fields[-1].endswith(":") and (kinds is None or fields[-2] in kinds)}


def main():
    nm, libstdcxx, list_path, script_path, *modules = sys.argv[1:]
    # Strong undefined symbols only: a weak one (__gmon_start__ and the like) may stay unset.
    imports = set()
    for module in modules:
        imports |= symbols(nm, ["-D", "--undefined-only", module], kinds={"U"})
    carried = sorted(imports & symbols(nm, ["-g", "--defined-only", libstdcxx]))
    with open(list_path, "w") as f:
        f.write("{\n  lockunit_module_*;\n")
        f.writelines("  %s;\n" % s for s in sorted(imports))
        f.write("};\n")
    with open(script_path, "w") as f:
        f.write("EXTERN(\n")
        f.writelines("  %s\n" % s for s in carried)
        f.write(")\n")


if __name__ == "__main__":
    main()
