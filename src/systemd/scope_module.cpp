// SPDX-License-Identifier: LGPL-2.1-or-later
// The program's side of scope mode: finding the module that implements it (scope.cpp).
#include "systemd/scope.hpp"

#include "util/module.hpp"

namespace lockunit {
namespace {

ScopeRunner::Factory factory = nullptr; // set when the module's code is loaded (or linked in)

} // namespace

bool ScopeRunner::provide(Factory f) {
    factory = f;
    return true;
}

Result<void> ScopeRunner::load() {
    if (factory) return {};
    if (auto r = modules::load("scope"); !r)
        return makeError(Errc::Unavailable,
                         "cannot load the scope module (transient scopes over D-Bus): " +
                             r.error().message);
    if (!factory)
        return makeError(Errc::Unavailable, "the scope module does not provide a scope runner");
    return {};
}

Result<std::unique_ptr<ScopeRunner>> ScopeRunner::connect(Options options) {
    if (auto r = load(); !r) return r.error();
    return factory(std::move(options));
}

} // namespace lockunit
