// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>

#include "util/result.hpp"

namespace lockunit::modules {

// lockunit's optional parts are modules, shared objects loaded on first use: the network
// backends (src/backends/registry.cpp loads them by URL scheme or config table) and scope mode
// (src/systemd/scope.hpp), so that a run that needs none of them maps none of their libraries.
// A module registers what it provides from a static initialiser, with functions of the program
// (exported: the program is linked with export_dynamic; modules do not link liblockunit).
//
// Loads lockunit-NAME.so once: from next to the program when that holds it (the build tree),
// else from the installed module directory. RTLD_NOW: a missing symbol is an error here, not a
// crash in the middle of a lease. The error (Errc::Unavailable) carries dlerror()'s text.
Result<void> load(const std::string& name);

// The address of `symbol` in lockunit-NAME.so, loaded as load() does. For a module's *part*: a
// shared object that a module loads itself, only when a lock needs it (the etcd module's TLS,
// lockunit-etcd-tls.so, only for etcds://), so that what it links stays unmapped otherwise.
// Errc::Unavailable when it cannot be loaded or lacks the symbol.
Result<void*> symbol(const std::string& name, const char* symbol);

} // namespace lockunit::modules
