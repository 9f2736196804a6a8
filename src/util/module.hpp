// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>

#include "util/result.hpp"

namespace lockunit::modules {

// lockunit's one module mechanism (docs/architecture.md, "Modules"). The optional parts of
// lockunit are modules, shared objects loaded on first use, so that a run that needs none of
// them maps none of their libraries: the network backends (src/backends/registry.cpp loads one
// by URL scheme or config table), scope mode (src/systemd/scope_module.cpp) and a module's
// parts (the etcd module's TLS, lockunit-etcd-tls.so, only for etcds://).
//
// Every module defines exactly one entry, with LOCKUNIT_MODULE below: an exported function
// lockunit_module_<name>() that returns the module's descriptor, a constant struct of the type
// its loader expects (a BackendModule lists backends, a ScopeModule makes scope runners, a
// TlsModule makes TLS contexts). No static initialiser registers anything, and nothing of the
// program is called when a module is loaded: the loader calls the entry when it needs it.
//
// entry<Descriptor>(name) returns that descriptor. The entry is looked up in the program itself
// first, where a module's code may be linked in (the built-in file backend, and every module in
// the unit tests: lockunit exports the module entries, the unit tests everything); otherwise lockunit-NAME.so is dlopen()ed
// once, from next to the program when that holds it (the build tree), else from the installed
// module directory. RTLD_NOW: a missing symbol is an error here, not a crash in the middle of a
// lease. Errc::Unavailable, with dlerror()'s text, when it cannot be loaded or has no entry.
// A module's name fixes its descriptor's type; "etcd-tls" has the entry lockunit_module_etcd_tls.
Result<const void*> entryOf(const std::string& name);

template <typename Descriptor> Result<const Descriptor*> entry(const std::string& name) {
    auto found = entryOf(name);
    if (!found) return found.error();
    return static_cast<const Descriptor*>(*found);
}

} // namespace lockunit::modules

// Defines module NAME's entry; the body returns a pointer to its descriptor (a function-local
// static). Exported even from a module built with hidden symbols.
#define LOCKUNIT_MODULE(NAME, Descriptor)                                                          \
    static const Descriptor* lockunitModuleDescriptor_##NAME();                                    \
    extern "C" __attribute__((visibility("default"))) const void* lockunit_module_##NAME() {       \
        return lockunitModuleDescriptor_##NAME();                                                  \
    }                                                                                              \
    static const Descriptor* lockunitModuleDescriptor_##NAME()
