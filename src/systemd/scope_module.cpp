// SPDX-License-Identifier: LGPL-2.1-or-later
// The program's side of scope mode: finding the module that implements it (scope.cpp).
#include "systemd/scope.hpp"

#include "util/module.hpp"

namespace lockunit {
namespace {

Result<const ScopeModule*> scopeModule() {
    auto module = modules::entry<ScopeModule>("scope");
    if (!module)
        return makeError(Errc::Unavailable,
                         "cannot load the scope module (transient scopes over D-Bus): " +
                             module.error().message);
    return module;
}

} // namespace

Result<void> ScopeRunner::load() {
    if (auto module = scopeModule(); !module) return module.error();
    return {};
}

Result<std::unique_ptr<ScopeRunner>> ScopeRunner::connect(Options options) {
    auto module = scopeModule();
    if (!module) return module.error();
    return (*module)->connect(std::move(options));
}

} // namespace lockunit
