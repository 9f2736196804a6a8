// SPDX-License-Identifier: LGPL-2.1-or-later
#include "util/signals.hpp"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <sys/signalfd.h>
#include <unistd.h>

#include "util/result.hpp"

#include "util/text.hpp"

namespace lockunit {
namespace {

struct Named {
    const char* name;
    int number;
};

constexpr Named kSignals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
    {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
    {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

} // namespace

std::optional<int> parseSignal(std::string_view text) {
    std::string upper(text);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    if (!upper.empty() && std::all_of(upper.begin(), upper.end(), ::isdigit)) {
        int n = std::atoi(upper.c_str());
        if (n >= 1 && n < NSIG) return n;
        return std::nullopt;
    }
    std::string_view name = upper;
    if (name.substr(0, 3) == "SIG") name.remove_prefix(3);
    for (const auto& s : kSignals)
        if (name == s.name) return s.number;
    if (name.substr(0, 5) == "RTMIN") {
        std::string_view rest = name.substr(5);
        if (rest.empty()) return SIGRTMIN;
        if (rest[0] == '+' && rest.size() > 1) {
            int n = std::atoi(std::string(rest.substr(1)).c_str());
            if (SIGRTMIN + n <= SIGRTMAX) return SIGRTMIN + n;
        }
    }
    return std::nullopt;
}

std::optional<std::vector<int>> parseSignalList(std::string_view text) {
    std::vector<int> out;
    if (text.empty() || text == "none") return out;
    for (std::string_view name : split(text, ',')) {
        auto sig = parseSignal(name);
        if (!sig) return std::nullopt;
        if (std::find(out.begin(), out.end(), *sig) == out.end()) out.push_back(*sig);
    }
    return out;
}

std::string signalName(int sig) {
    for (const auto& s : kSignals)
        if (s.number == sig) return std::string("SIG") + s.name;
    if (sig >= SIGRTMIN && sig <= SIGRTMAX) return "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
    return std::to_string(sig);
}

SignalSource::SignalSource(const std::vector<int>& forwarded) {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2})
        sigaddset(&set, sig);
    for (int sig : forwarded)
        sigaddset(&set, sig);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) < 0)
        throw std::runtime_error(errnoMessage("sigprocmask"));
    fd_.reset(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_.valid()) throw std::runtime_error(errnoMessage("signalfd"));
}

std::vector<int> SignalSource::drain() {
    std::vector<int> out;
    signalfd_siginfo info{};
    while (::read(fd_.get(), &info, sizeof info) == sizeof info)
        out.push_back(static_cast<int>(info.ssi_signo));
    return out;
}

} // namespace lockunit
