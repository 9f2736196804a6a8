// SPDX-License-Identifier: LGPL-2.1-or-later
#include "process/payload.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <cstdlib>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace lockunit {

namespace {

// What the child needs between clone and exec, all built before: it may only make
// async-signal-safe calls, and it shares its parent's memory until it exec()s.
struct ChildSetup {
    const char* path;
    char** argv;
    char** envp;
    pid_t parent;
    sigset_t none;
};

// The child's side: its own process group, its death with the guard, a clean signal state,
// then exec. Only syscalls: no allocation, no lock, no return.
[[noreturn]] void becomePayload(const ChildSetup& c) {
    ::setpgid(0, 0);
    // If its parent (the lock guard) dies, the payload's main process dies with it; lockunit
    // then stops the rest of the tree (docs/design.md, "The lock guard").
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != c.parent) ::_exit(127);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    // Neither lockunit nor its guard installs signal handlers (signals go to signalfds), so
    // unblocking here cannot run one of them in a child that shares the parent's memory.
    ::sigprocmask(SIG_SETMASK, &c.none, nullptr);
    // Every fd we know of is O_CLOEXEC; this catches those a library opened without it.
    ::close_range(3, ~0U, 0);
    ::execve(c.path, c.argv, c.envp);
    ::_exit(errno == ENOENT ? 127 : 126);
}

int payloadChild(void* setup) {
    becomePayload(*static_cast<const ChildSetup*>(setup));
}

} // namespace

pid_t startPayloadChild(const char* path, char** argv, char** envp, char* stack,
                        size_t stackSize) {
    ChildSetup setup{path, argv, envp, ::getpid(), {}};
    sigemptyset(&setup.none);
    pid_t pid = ::clone(payloadChild, stack + stackSize, CLONE_VM | CLONE_VFORK | SIGCHLD, &setup);
    if (pid > 0) ::setpgid(pid, pid); // both sides, so neither races the other
    return pid;
}

void ChildReaper::reap() {
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        if (pid == main_) {
            if (WIFEXITED(status))
                mainExit_ = WEXITSTATUS(status);
            else if (WIFSIGNALED(status))
                mainExit_ = 128 + WTERMSIG(status);
        }
    }
}

namespace {

// A small /proc file, whole (empty if it cannot be read). Plain read(): these are read several
// times per run, and a stream costs more than the read.
std::string readProcFile(const std::string& path) {
    std::string out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
}

// Our direct children, from /proc/self/task/*/children ("12 34 ").
std::vector<pid_t> directChildren() {
    std::vector<pid_t> out;
    DIR* tasks = ::opendir("/proc/self/task");
    if (!tasks) return out;
    while (dirent* t = ::readdir(tasks)) {
        if (t->d_name[0] == '.') continue;
        const std::string text = readProcFile(std::string("/proc/self/task/") + t->d_name + "/children");
        const char* p = text.c_str();
        char* end = nullptr;
        for (long pid; (pid = std::strtol(p, &end, 10)) > 0 && end != p; p = end)
            out.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(tasks);
    return out;
}

// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. Fields
// are counted after the command name, which ends at the last ')' and may hold anything.
unsigned long long startTimeOf(pid_t pid) {
    const std::string stat = readProcFile("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    const char* p = stat.c_str() + close + 1;
    for (int field = 3; field < 22 && *p; ++field) { // skip fields 3..21
        while (*p == ' ')
            ++p;
        while (*p && *p != ' ')
            ++p;
    }
    return std::strtoull(p, nullptr, 10);
}

} // namespace

void ChildReaper::recordForeign() {
    foreign_.clear();
    for (pid_t child : directChildren())
        foreign_.push_back({child, startTimeOf(child)});
}

void ChildReaper::setMain(pid_t pid) {
    main_ = pid;
    mainExit_.reset();
}

std::vector<pid_t> ChildReaper::payloadChildren() const {
    std::vector<pid_t> out;
    for (pid_t child : directChildren()) {
        bool foreign = false;
        for (const auto& f : foreign_)
            if (f.pid == child && f.startTime == startTimeOf(child)) foreign = true;
        if (!foreign) out.push_back(child);
    }
    return out;
}

bool ChildReaper::childrenLeft() const {
    return !payloadChildren().empty();
}

void ChildReaper::signalChildren(int sig) const {
    for (pid_t child : payloadChildren())
        ::kill(child, sig);
}

} // namespace lockunit
