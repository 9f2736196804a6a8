// SPDX-License-Identifier: LGPL-2.1-or-later
#include "app/app.hpp"

#include <csignal>
#include <cstring>
#include <random>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/status.hpp"
#include "backends/registry.hpp"
#include "config/config.hpp"
#include "supervisor/supervisor.hpp"
#include "systemd/notify.hpp"
#include "systemd/libsystemd.hpp"
#include "systemd/notify_relay.hpp"
#include "systemd/runner.hpp"
#include "systemd/scope.hpp"
#include "util/log.hpp"

extern char** environ;

namespace lockunit {
namespace {

int exitCodeFor(const Error& e) {
    switch (e.code) {
    case Errc::Usage:
        return exitcode::Usage;
    case Errc::Config:
        return exitcode::Config;
    case Errc::Busy:
        return exitcode::Busy;
    case Errc::Lost:
        return exitcode::Lost;
    default:
        return exitcode::Unavailable;
    }
}

// PATH lookup, done before the lock is taken: a missing program is a config error, not a
// payload that fails after a failover.
Result<std::string> resolveExecutable(const Setting<std::vector<std::string>>& command) {
    const std::string& name = command.value.front();
    auto usable = [](const std::string& p) {
        struct stat st {};
        return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
    };
    Errc code = command.origin.fromCommandLine() ? Errc::Usage : Errc::Config;
    if (name.find('/') != std::string::npos) {
        if (usable(name)) return name;
        return makeError(code, command.origin.describe() + ": command '" + name +
                                   "' is not an executable file");
    }
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t colon = dirs.find(':', start);
        if (colon == std::string::npos) colon = dirs.size();
        std::string dir = dirs.substr(start, colon - start);
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (usable(candidate)) return candidate;
        start = colon + 1;
    }
    return makeError(code,
                     command.origin.describe() + ": command '" + name + "' not found in PATH");
}

HolderRecord selfRecord() {
    HolderRecord self;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    self.host = host;
    self.pid = ::getpid();
    // The unit we run in, for `status`; there is none on a system not booted with systemd,
    // and then libsystemd is not loaded for it.
    if (libsystemd::booted())
        if (auto sd = libsystemd::get()) {
            char* unit = nullptr;
            if ((*sd)->pidGetUnit(0, &unit) >= 0 && unit) {
                self.unit = unit;
                std::free(unit);
            }
        }
    std::random_device rd;
    char rnd[17];
    std::snprintf(rnd, sizeof rnd, "%08x%08x", rd(), rd());
    self.id = self.host + ":" + std::to_string(self.pid) + ":" + rnd;
    return self;
}

std::vector<std::string> payloadEnvironment(const Config& config, const std::string& holderId) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string_view kv(*e);
        for (std::string_view drop :
             {"NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC=", "LOCKUNIT_"})
            if (kv.substr(0, drop.size()) == drop) goto skip;
        env.emplace_back(kv);
    skip:;
    }
    const std::string& url = config.backend.value;
    env.push_back("LOCKUNIT_NAME=" + config.name.value);
    env.push_back("LOCKUNIT_HOLDER=" + holderId);
    env.push_back("LOCKUNIT_BACKEND=" + url.substr(0, url.find("://")));
    return env; // LOCKUNIT_TOKEN is added once the lock is held
}

Result<std::unique_ptr<LockBackend>> makeBackend(const Config& config, const HolderRecord& self) {
    BackendParams params;
    params.url = config.backend.value;
    params.lockName = config.name.value;
    params.ttl = config.ttl.value;
    params.renew = config.renew.value;
    params.deadlineBudget =
        config.renew.value + config.stopTimeout.value + config.margin() + config.drift();
    params.holders = static_cast<int>(config.holders.value);
    params.self = self;
    const std::string scheme = params.url.substr(0, params.url.find("://"));
    auto info = backends::byScheme(scheme);
    if (!info) return info.error();
    params.settings = &config.backendSettings(*info ? std::string((*info)->table) : scheme);
    return backends::create(params);
}

int run(const Config& config) {
    auto exe = resolveExecutable(config.command);
    if (!exe) {
        log::error(exe.error().message);
        return exitCodeFor(exe.error());
    }
    // Before anything else opens a file or starts a thread: signals go to the signalfd.
    SignalSource signals(config.forwardSignals.value);
    std::signal(SIGPIPE, SIG_IGN);
    // Orphans of the payload come back to us, so that a stop catches them too.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);

    HolderRecord self = selfRecord();
    auto backend = makeBackend(config, self);
    if (!backend) {
        log::error("backend '" + config.backend.value.substr(0, config.backend.value.find("://")) +
                   "': " + backend.error().message);
        return exitCodeFor(backend.error());
    }
    auto runner = makeRunner(config);
    if (!runner) {
        log::error(runner.error().message);
        return exitCodeFor(runner.error());
    }

    LaunchSpec spec;
    spec.path = *exe;
    spec.argv = config.command.value;
    spec.env = payloadEnvironment(config, self.id);
    spec.stopSignal = config.stopSignal.value;
    spec.stopTimeout = config.stopTimeout.value;
    std::string cmdline;
    for (const auto& a : config.command.value)
        cmdline += (cmdline.empty() ? "" : " ") + a;
    spec.description = "lockunit payload of lock '" + config.name.value + "': " + cmdline;

    // notify=relay: the payload gets a NOTIFY_SOCKET of ours; its READY=1 becomes ours.
    std::unique_ptr<NotifyRelay> relay;
    if (config.notify.value == NotifyMode::Relay) {
        auto r = NotifyRelay::create();
        if (!r) {
            log::error(r.error().message);
            return exitcode::Unavailable;
        }
        relay = std::move(*r);
        spec.env.push_back("NOTIFY_SOCKET=" + relay->path());
    }

    auto notifier = SdNotifier::create();
    if (!notifier) {
        log::error(notifier.error().message);
        return exitCodeFor(notifier.error());
    }
    RealClock clock;
    Supervisor supervisor({config, **backend, **runner, *notifier, clock, signals, relay.get()},
                          spec, self.id);
    return supervisor.run();
}

// `lockunit cleanup` (ExecStopPost=): stops the payload scope of the unit we run in, which a
// `systemctl restart` or a crash may have left behind. Nothing to stop is success.
int cleanup(const CommandLine& cli) {
    bool user = false;
    for (const auto& [key, value] : cli.options) {
        if (key == "user")
            user = true;
        else if (key == "verbose")
            log::setVerbose(true);
        else {
            log::error("cleanup: --" + key + " is not an option of cleanup (only --user, -v)");
            return exitcode::Usage;
        }
    }
    if (!cli.command.empty() || !cli.confPath.empty()) {
        log::error("cleanup takes no command and no --conf (only --user, -v)");
        return exitcode::Usage;
    }
    auto unit = ownUnit(user);
    if (!unit) {
        log::error("cleanup: " + unit.error().message);
        return exitcode::Unavailable;
    }
    ScopeRunner::Options options;
    options.userBus = user;
    options.ownUnit = *unit;
    auto runner = ScopeRunner::connect(options);
    if (!runner) {
        log::error("cleanup: " + runner.error().message);
        return exitcode::Unavailable;
    }
    NoInterrupt never;
    if (auto r = (*runner)->prepare(never); !r) {
        log::error("cleanup: " + r.error().message);
        return exitcode::Unavailable;
    }
    if ((*runner)->stoppedStale())
        log::notice("stopped leftover payload scope '" + (*runner)->scopeName() + "'");
    else
        log::debug("no payload scope '" + (*runner)->scopeName() + "' to stop");
    return exitcode::Ok;
}

} // namespace

int runApp(int argc, char** argv) {
    auto cli = parseCommandLine(argc, argv);
    if (!cli) {
        log::error(cli.error().message);
        return exitcode::Usage;
    }
    switch (cli->action) {
    case CommandLine::Action::Help:
        log::printOut(helpText());
        return exitcode::Ok;
    case CommandLine::Action::Cleanup:
        return cleanup(*cli);
    case CommandLine::Action::Version:
        log::printOut("lockunit " LOCKUNIT_VERSION "\n");
        return 0;
    default:
        break;
    }
    auto config = loadConfig(*cli, cli->action == CommandLine::Action::Run);
    if (!config) {
        // One line per problem, each pointing at its place.
        std::string text = config.error().message;
        size_t start = 0;
        while (start < text.size()) {
            size_t nl = text.find('\n', start);
            if (nl == std::string::npos) nl = text.size();
            log::error(text.substr(start, nl - start));
            start = nl + 1;
        }
        return exitCodeFor(config.error());
    }
    log::setVerbose(config->verbose.value);
    switch (cli->action) {
    case CommandLine::Action::Check:
        log::printOut(formatConfig(*config));
        return exitcode::Ok;
    case CommandLine::Action::Status: {
        if (config->name.value.empty()) {
            log::error("status needs a lock: give --conf=FILE or --name=NAME");
            return exitcode::Usage;
        }
        HolderRecord self = selfRecord();
        auto backend = makeBackend(*config, self);
        if (!backend)
            return printStatusError(*config, backend.error(), cli->json,
                                    exitCodeFor(backend.error()));
        return printStatus(*config, **backend, cli->json);
    }
    default:
        return run(*config);
    }
}

} // namespace lockunit
