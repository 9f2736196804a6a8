// SPDX-License-Identifier: LGPL-2.1-or-later
// The payload of lockunit's tests: records when it runs, so that a checker can prove that no
// two payloads ever ran at once. Each record is one line appended (O_APPEND) to --log:
//   start NODE TOKEN PID NS      on start (NS = CLOCK_REALTIME in nanoseconds)
//   beat  NODE TOKEN PID NS      every --heartbeat ms while it runs
//   end   NODE TOKEN PID NS      when it ends (if it can)
// Options: --log FILE, --node NAME, --hold MS (default: forever), --exit N, --heartbeat MS,
// --ignore-term (SIGTERM does nothing), --linger MS (on SIGTERM, go on beating for MS before
// ending: a payload that takes its time to stop), --daemon-child (fork a setsid'd grandchild that
// sleeps and heartbeats as NODE/child), --fds (print our open fds to stdout), --notify-ready
// (send READY=1 to $NOTIFY_SOCKET after --ready-delay MS).

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

std::string logPath, node = "node", token;
volatile sig_atomic_t stopping = 0;

long long nowNs() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

void record(const char* what) {
    if (logPath.empty()) return;
    char line[512];
    int n = std::snprintf(line, sizeof line, "%s %s %s %d %lld\n", what, node.c_str(),
                          token.empty() ? "-" : token.c_str(), getpid(), nowNs());
    int fd = open(logPath.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    [[maybe_unused]] auto w = write(fd, line, static_cast<size_t>(n));
    close(fd);
}

void onTerm(int) {
    stopping = 1;
}

void sleepMs(long ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1'000'000};
    nanosleep(&ts, nullptr);
}

void notifyReady() {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path) return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = 0;
    const char msg[] = "READY=1\nSTATUS=test payload ready";
    sendto(fd, msg, sizeof msg - 1, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    close(fd);
}

} // namespace

int main(int argc, char** argv) {
    long hold = -1, heartbeat = 20, readyDelay = 0, linger = 0;
    int exitCode = 0;
    bool ignoreTerm = false, daemonChild = false, fds = false, ready = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        if (a == "--log")
            logPath = next();
        else if (a == "--node")
            node = next();
        else if (a == "--hold")
            hold = std::atol(next().c_str());
        else if (a == "--exit")
            exitCode = std::atoi(next().c_str());
        else if (a == "--heartbeat")
            heartbeat = std::atol(next().c_str());
        else if (a == "--linger")
            linger = std::atol(next().c_str());
        else if (a == "--ignore-term")
            ignoreTerm = true;
        else if (a == "--daemon-child")
            daemonChild = true;
        else if (a == "--fds")
            fds = true;
        else if (a == "--notify-ready")
            ready = true;
        else if (a == "--ready-delay")
            readyDelay = std::atol(next().c_str());
        else {
            std::fprintf(stderr, "test_payload: unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    if (const char* t = std::getenv("LOCKUNIT_TOKEN")) token = t;
    std::signal(SIGTERM, ignoreTerm ? SIG_IGN : onTerm);
    if (fds) {
        DIR* d = opendir("/proc/self/fd");
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            char target[512] = {};
            std::string p = std::string("/proc/self/fd/") + e->d_name;
            [[maybe_unused]] auto n = readlink(p.c_str(), target, sizeof target - 1);
            std::printf("fd %s %s\n", e->d_name, target);
        }
        closedir(d);
        std::fflush(stdout);
    }
    if (daemonChild) {
        pid_t pid = fork();
        if (pid == 0) {
            setsid();
            if (fork() != 0) _exit(0);
            node += "/child";
            std::signal(SIGTERM, SIG_IGN); // a daemon that ignores the polite request
            record("start");
            for (;;) {
                sleepMs(heartbeat);
                record("beat");
            }
        }
    }
    record("start");
    if (ready) {
        sleepMs(readyDelay);
        notifyReady();
    }
    long long until = hold < 0 ? -1 : nowNs() + hold * 1'000'000LL;
    while (!stopping && (until < 0 || nowNs() < until)) {
        long step = heartbeat;
        if (until >= 0) step = std::min<long long>(step, (until - nowNs()) / 1'000'000 + 1);
        sleepMs(step);
        record("beat");
    }
    for (long long end = nowNs() + linger * 1'000'000LL; stopping && nowNs() < end;) {
        sleepMs(std::min<long long>(heartbeat, (end - nowNs()) / 1'000'000 + 1));
        record("beat");
    }
    record("end");
    return stopping ? 143 : exitCode;
}
