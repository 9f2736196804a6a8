// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/libsystemd.hpp"

#include <dlfcn.h>
#include <string>
#include <unistd.h>

namespace lockunit::libsystemd {
namespace {

constexpr const char* kSoname = "libsystemd.so.0";

template <typename F> bool resolve(void* handle, F& f, const char* name) {
    f = reinterpret_cast<F>(::dlsym(handle, name));
    return f != nullptr;
}

Result<const Api*> load() {
    static Api api;
    void* handle = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
        return makeError(Errc::Unavailable, std::string("cannot load ") + ::dlerror());
    if (!resolve(handle, api.notify, "sd_notify") ||
        !resolve(handle, api.watchdogEnabled, "sd_watchdog_enabled") ||
        !resolve(handle, api.journalSendWithLocation, "sd_journal_send_with_location") ||
        !resolve(handle, api.pidGetUnit, "sd_pid_get_unit") ||
        !resolve(handle, api.pidGetUserUnit, "sd_pid_get_user_unit"))
        return makeError(Errc::Unavailable, std::string(kSoname) + ": " + ::dlerror());
    return &api;
}

} // namespace

Result<const Api*> get() {
    static const Result<const Api*> api = load();
    return api;
}

bool booted() {
    return ::access("/run/systemd/system/", F_OK) == 0;
}

} // namespace lockunit::libsystemd
